from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from crm import views

HEALTH_VIEWS: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": views.healthz,
    "/readyz": views.readyz,
}


class HealthCheckMiddleware:
    """Answers /healthz and /readyz before host validation, HTTPS redirects and sessions.

    Probes come from load balancers and orchestrators that address the container by IP and over plain HTTP;
    they carry no Host a deployment would list in ALLOWED_HOSTS, and the answers reveal no data.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = HEALTH_VIEWS.get(request.path_info)
        if view is not None:
            return view(request)
        return self.get_response(request)
