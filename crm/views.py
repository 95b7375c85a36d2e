from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.template import loader
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from crm import health, observability
from crm.forms import ApiTokenCreateForm, LoginForm
from crm.models import User
from crm.selectors import api_token_list, get_api_token_for_user
from crm.services import api_token_create, api_token_revoke


def _user(request: HttpRequest) -> User:
    """The signed-in user; only called behind login_required."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


class LoginView(auth_views.LoginView):
    """Django's sign-in with the brute-force throttle: a refused attempt answers 429 with Retry-After."""

    form_class = LoginForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]  # form_class is LoginForm
        response = super().form_invalid(form)
        if form.lockout is not None:
            response.status_code = 429
            response["Retry-After"] = str(form.lockout.retry_after)
        return response


@login_required
@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    new_key = None
    form = ApiTokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        token, new_key = api_token_create(user=user, name=form.cleaned_data["name"])
        messages.success(request, f"Token “{token.name}” created. Copy the key now: it is shown only once.")
        form = ApiTokenCreateForm()
    response = render(
        request, "crm/api_tokens.html", {"form": form, "tokens": api_token_list(user=user), "new_key": new_key}
    )
    # The page may carry a fresh key: never let a cache or the back button keep it.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def api_token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_api_token_for_user(user=_user(request), token_id=token_id)
    api_token_revoke(token=token)
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("api-tokens")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: answers while the process can serve a request; touches nothing else."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: database, broker and recordings storage; 503 naming each check that failed."""
    results = health.run_checks()
    failed = {name: reason for name, reason in results.items() if reason is not None}
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": {name: ("ok" if reason is None else f"failed: {reason}") for name, reason in results.items()},
        "failed": sorted(failed),
    }
    return JsonResponse(body, status=503 if failed else 200)


@never_cache
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics, for allowed scrapers only (docs/operations.md); anyone else gets the 404 of any
    unknown address, so the endpoint is not advertised."""
    if not observability.metrics_request_allowed(request):
        raise Http404
    if request.method not in {"GET", "HEAD"}:
        return HttpResponseNotAllowed(["GET", "HEAD"])
    body, content_type = observability.metrics_exposition(accept=request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
    return render(request, "404.html", {"path": request.path}, status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"detail": "Internal server error.", "code": "server_error"}, status=500)
    # No context processors: whatever broke may be what they need.
    return HttpResponse(loader.get_template("500.html").render(), status=500)
