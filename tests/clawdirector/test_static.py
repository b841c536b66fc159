"""Static files are served by the app itself with DEBUG off (WhiteNoise): the admin's CSS, the
console's script, the Swagger UI. The hashed, compressed build is exercised for real, after
collectstatic and under gunicorn, in tests/deploy/test_production_recipe.py."""

import pytest
from django.conf import settings


@pytest.mark.parametrize("path", [
    "admin/css/base.css",
    "console/live.js",
    "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
])
def test_it_serves_static_files_without_debug(client, path):
    assert settings.DEBUG is False
    response = client.get(f"/static/{path}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_production_builds_hashed_compressed_files():
    from clawdirector import settings as production

    assert production.STORAGES["staticfiles"]["BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in production.MIDDLEWARE
