from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from crm.throttling import Lockout, login_throttle_check


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What will use this token, e.g. “pipecat-prod” or “BI export”.",
    )


def _lockout_of(form: AuthenticationForm) -> Lockout | None:
    """Checked before any password is (the backend refuses it too), so that the form can say why."""
    lockout = login_throttle_check(request=form.request, username=form.cleaned_data.get("username"))
    if lockout is not None:
        form.add_error(None, forms.ValidationError(lockout.message, code="throttled"))
    return lockout


class LoginForm(AuthenticationForm):
    # Read by LoginView: a throttled attempt answers 429 with Retry-After.
    lockout: Lockout | None = None

    def clean(self) -> dict[str, Any]:
        self.lockout = _lockout_of(self)
        return self.cleaned_data if self.lockout is not None else super().clean()


class AdminLoginForm(AdminAuthenticationForm):
    """The Django admin's sign-in, with the same throttle and the same explanation."""

    def clean(self) -> dict[str, Any]:
        return self.cleaned_data if _lockout_of(self) is not None else super().clean()
