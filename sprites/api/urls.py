"""Routes under /api/sprites/ (mounted in clawdirector/urls.py), and the list at /api/sprites.

Written out rather than by a DRF router: a router with an empty prefix cannot make the
trailing slash optional, and the integration guide's paths have none
(`/api/sprites/provision`, `/api/sprites/{id}/status`). Every path works with and without
the trailing slash. The list is `list_route`, mounted beside the include at
`^api/sprites(?:/)?$`: inside an include under `api/sprites/` it could not match
`/api/sprites`. Anything else under /api/sprites/ is a JSON 404.
"""

from django.urls import re_path

from sprites.api.errors import not_found
from sprites.api.views import SpriteViewSet

app_name = "sprites"

ID = r"(?P<id>[^/]+)"  # validated as a UUID in the view: a malformed id is a 404, not a miss
# An optional slash, written so the OpenAPI schema shows the guide's slash-less paths.
SLASH = r"(?:/)?"


def _action_routes():
    routes = []
    for action in SpriteViewSet.get_extra_actions():
        prefix = f"^{ID}/" if action.detail else "^"
        view = SpriteViewSet.as_view(dict(action.mapping), basename="sprite", detail=action.detail, **action.kwargs)
        routes.append(re_path(rf"{prefix}{action.url_path}{SLASH}$", view, name=f"sprite-{action.url_name}"))
    return routes


# Mounted by clawdirector/urls.py at the root, as `/api/sprites` with an optional slash.
list_route = re_path(rf"^api/sprites{SLASH}$",
                     SpriteViewSet.as_view({"get": "list"}, basename="sprite", detail=False), name="sprite-list")

urlpatterns = [
    *_action_routes(),  # before the detail route: "provision" would match {id}
    re_path(rf"^{ID}{SLASH}$", SpriteViewSet.as_view({"get": "retrieve"}, basename="sprite", detail=True),
            name="sprite-detail"),
    re_path(r"", not_found),
]
