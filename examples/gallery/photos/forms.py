"""The upload form: one or many images at once, each within the size limit
(``settings.MAX_UPLOAD_MB``, from ``GALLERY_MAX_UPLOAD_MB``) and in a format
the gallery accepts (Pillow opens many more: EPS, for one, would run
Ghostscript)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

#: The formats the gallery accepts (Pillow's names).
FORMATS = ("JPEG", "PNG", "GIF", "WEBP")


def max_upload_bytes() -> int:
    return int(float(getattr(settings, "MAX_UPLOAD_MB", 20)) * 1024 * 1024)


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
        limit = max_upload_bytes()
        for upload in files:
            if upload.size > limit:
                raise forms.ValidationError(
                    f"{upload.name} is {filesizeformat(upload.size)}; the limit is "
                    f"{filesizeformat(limit)} per image.",
                    code="too_large",
                )
        cleaned = [super(MultipleImageField, self).clean(f, initial) for f in files]
        for upload in cleaned:
            image_format = getattr(getattr(upload, "image", None), "format", None)
            if image_format not in FORMATS:
                raise forms.ValidationError(
                    f"{upload.name} is a {image_format or 'file of an unknown kind'}; the "
                    "gallery takes JPEG, PNG, GIF and WebP images.",
                    code="format",
                )
        return cleaned


class UploadForm(forms.Form):
    images = MultipleImageField(
        label="Images",
        widget=MultipleImageInput(
            attrs={"accept": "image/jpeg,image/png,image/gif,image/webp", "multiple": True}
        ),
    )
    title = forms.CharField(
        max_length=200,
        required=False,
        help_text="Optional; each photo is named after its file otherwise.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = filesizeformat(max_upload_bytes())
        files = getattr(settings, "MAX_UPLOAD_FILES", 20)
        self.fields[
            "images"
        ].help_text = f"JPEG, PNG, GIF or WebP, up to {limit} each; up to {files} at once."
