from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from console.login import login as admin_login
from sprites.api import urls as sprites_urls
from sprites.api.costs import ProjectionView
from sprites.api.errors import not_found
from sprites.api.views import ObtainTokenView

urlpatterns = [
    path("admin/login/", admin_login, name="admin-login"),  # throttled, then the admin's own view
    path("admin/", admin.site.urls),
    re_path(r"^api/auth/token(?:/)?$", ObtainTokenView.as_view(), name="api-token"),
    sprites_urls.list_route,  # /api/sprites, with or without the slash
    path("api/sprites/", include("sprites.api.urls")),
    path("api/cron/", include("heartbeat.urls")),
    re_path(r"^api/costs/projection(?:/)?$", ProjectionView.as_view(), name="api-costs-projection"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    re_path(r"^api/", not_found),  # JSON, never an HTML page, for any other API path
]
