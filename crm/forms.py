from __future__ import annotations

from django import forms


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What will use this token, e.g. “pipecat-prod” or “BI export”.",
    )
