"""Hooks: small objects that connect receivers to one storage's signals."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import Hook
from .delete_local import DeleteLocal
from .preprocess import Preprocess
from .strip_metadata import StripMetadata
from .thumbnails import Thumbnails

__all__ = [
    "DeleteLocal",
    "Hook",
    "Preprocess",
    "StripMetadata",
    "Thumbnails",
    "resolve_hook",
]


def resolve_hook(spec: Any) -> Any:
    """A hook object from an instance, or a dotted path to a Hook class
    (instantiated with no arguments) or to a hook instance."""
    if isinstance(spec, str):
        try:
            spec = import_string(spec)
        except ImportError as exc:
            raise ImproperlyConfigured(f"The hook {spec!r} cannot be imported: {exc}") from exc
        if isinstance(spec, type):
            spec = spec()
    if isinstance(spec, type):
        raise ImproperlyConfigured(
            f"Give the hook {spec.__name__} as an instance ({spec.__name__}()) or a dotted path."
        )
    if not callable(getattr(spec, "connect", None)):
        raise ImproperlyConfigured(f"{spec!r} is not a hook: it has no connect(storage) method.")
    return spec
