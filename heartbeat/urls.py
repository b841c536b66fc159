from django.urls import re_path

from heartbeat import views

app_name = "heartbeat"
# Mounted at api/cron/: both /api/cron/heartbeat and /api/cron/heartbeat/ (schedulers differ,
# and a redirect would drop the Authorization header on some of them).
urlpatterns = [
    re_path(r"^heartbeat/?$", views.cron_heartbeat, name="heartbeat"),
]
