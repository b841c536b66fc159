from django.urls import path

app_name = "heartbeat"
urlpatterns: list = []
