"""The upload form: one or many images at once."""

from __future__ import annotations

from typing import Any

from django import forms


class MultipleImageInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleImageField(forms.ImageField):
    """An ImageField that takes a list of files and checks each one."""

    widget = MultipleImageInput

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, (list, tuple)) else [data]
        files = [f for f in files if f]
        if not files and self.required:
            raise forms.ValidationError(self.error_messages["required"], code="required")
        return [super(MultipleImageField, self).clean(f, initial) for f in files]


class UploadForm(forms.Form):
    images = MultipleImageField(
        label="Images",
        help_text="JPEG, PNG, GIF or WebP; choose several at once if you like.",
        widget=MultipleImageInput(attrs={"accept": "image/*", "multiple": True}),
    )
    title = forms.CharField(
        max_length=200,
        required=False,
        help_text="Optional; each photo is named after its file otherwise.",
    )
