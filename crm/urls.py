from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from calls.page_urls import page_urlpatterns as calls_pages
from calls.urls import api_urlpatterns as calls_api
from campaigns.page_urls import page_urlpatterns as campaigns_pages
from campaigns.urls import api_urlpatterns as campaigns_api
from crm import views
from crm.api import ApiRootView
from crm.forms import AdminLoginForm

api_patterns = [
    path("", ApiRootView.as_view(), name="api-root"),
    *calls_api,
    *campaigns_api,
]

urlpatterns = [
    *calls_pages,
    *campaigns_pages,
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("account/tokens/", views.api_tokens, name="api-tokens"),
    path("account/tokens/<int:token_id>/revoke/", views.api_token_revoke_view, name="api-token-revoke"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    path("api/crm/", include(api_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script as a file: the Content-Security-Policy allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("admin/", admin.site.urls),
]

# The admin signs in through authenticate() like the site, so the throttle refuses it too; this form says why.
admin.site.login_form = AdminLoginForm

handler404 = "crm.views.page_not_found"
handler500 = "crm.views.server_error"
