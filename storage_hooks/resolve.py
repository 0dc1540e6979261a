"""Turning what a user writes (alias, dotted path, class, instance) into
objects, and configurations into stable identities."""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import Storage, storages
from django.utils.module_loading import import_string


def build_storage(spec: Any, options: dict[str, Any] | None = None, *, role: str) -> Storage:
    """Resolve ``spec`` to a Storage instance.

    ``spec`` is an alias of ``settings.STORAGES`` (a string without a dot),
    a dotted path to a Storage class, a Storage class, or an instance.
    ``options`` are keyword arguments for a class or a path.
    """
    if spec is None or spec == "":
        raise ImproperlyConfigured(f"No {role} storage was given (None or an empty string).")
    if isinstance(spec, str):
        if "." not in spec:
            if spec not in settings.STORAGES:
                raise ImproperlyConfigured(
                    f"The {role} storage {spec!r} is not an alias of settings.STORAGES "
                    f"(known: {', '.join(sorted(settings.STORAGES)) or 'none'})."
                )
            if options:
                raise ImproperlyConfigured(
                    f"{role}_options cannot be combined with the STORAGES alias {spec!r}; "
                    f"put them in STORAGES[{spec!r}]['OPTIONS']."
                )
            return storages[spec]
        try:
            spec = import_string(spec)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"The {role} storage path {spec!r} could not be imported: {exc}"
            ) from exc
    if isinstance(spec, type):
        if not issubclass(spec, Storage):
            raise ImproperlyConfigured(f"The {role} storage {spec!r} is not a Storage class.")
        return spec(**(options or {}))
    if isinstance(spec, Storage):
        if options:
            raise ImproperlyConfigured(
                f"{role}_options cannot be combined with a storage instance."
            )
        return spec
    raise ImproperlyConfigured(
        f"The {role} storage must be a STORAGES alias, a dotted path, a Storage class or "
        f"instance, not {spec!r}."
    )


def _plain(value: Any) -> Any:
    """A JSON-able, deterministic picture of a configuration value."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    deconstruct = getattr(value, "deconstruct", None)
    if callable(deconstruct) and not isinstance(value, type):
        try:
            path, args, kwargs = deconstruct()
        except Exception:
            path = None
        else:
            return {"path": path, "args": _plain(args), "kwargs": _plain(kwargs)}
    return f"{type(value).__module__}.{type(value).__qualname__}"


def fingerprint(config: dict[str, Any]) -> str:
    """A short hash of a configuration, equal in every process that has it."""
    text = json.dumps(_plain(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def import_or_none(path: str) -> Any:
    try:
        return import_string(path)
    except ImportError:
        return None


def normalize(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The constructor's arguments as one dict, defaults left out."""
    signature = inspect.signature(cls.__init__)  # type: ignore[misc]
    bound = signature.bind_partial(None, *args, **kwargs)
    config: dict[str, Any] = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    for pname, value in list(bound.arguments.items())[1:]:
        if signature.parameters[pname].kind is inspect.Parameter.VAR_KEYWORD:
            config.update(value)
        else:
            config[pname] = value
    return config


#: Option names that hold credentials: never written into migrations or
#: pickles, and never part of a storage's identity.
_SECRET = re.compile(
    r"secret|password|passwd|token|credential|private_key|account_key|connection_string"
    r"|access_key|sas_token|sas_key",
    re.IGNORECASE,
)

#: Options that say *where* a storage's files live; the identity of a
#: QueuedStorage without an explicit key is derived from these alone.
LOCATION_OPTIONS = (
    "location",
    "bucket_name",
    "bucket",
    "endpoint_url",
    "container",
    "azure_container",
    "account_name",
    "root_path",
    "base_path",
)


def is_secret_option(name: str) -> bool:
    return bool(_SECRET.search(str(name)))


def url_without_credentials(url: str) -> str:
    """``url`` without user information, query string or fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def has_url_credentials(value: Any) -> bool:
    return isinstance(value, str) and "://" in value and "@" in urlsplit(value).netloc


def without_secrets(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` less every credential: secret-named options are left out,
    and URLs lose their user information and query string."""
    clean = {}
    for name, value in options.items():
        if is_secret_option(name):
            continue
        if has_url_credentials(value) or (isinstance(value, str) and "://" in value):
            value = url_without_credentials(value)
        clean[name] = value
    return clean


def _where(spec: Any, options: dict[str, Any]) -> Any:
    """Where a storage given as ``spec`` (+ ``options``) keeps its files."""
    if isinstance(spec, str) and "." not in spec:
        return {"alias": spec}
    if isinstance(spec, str):
        cls: Any = import_or_none(spec) or spec
        kwargs = options
    elif isinstance(spec, type):
        cls, kwargs = spec, options
    else:
        cls = type(spec)
        kwargs = {}
        deconstruct = getattr(spec, "deconstruct", None)
        if callable(deconstruct):
            try:
                kwargs = dict(deconstruct()[2])
            except Exception:
                kwargs = {}
        for option in LOCATION_OPTIONS:
            # Built storages keep some of these as attributes (a location
            # given by a setting, not an option).
            if option not in kwargs and isinstance(getattr(spec, option, None), str):
                kwargs[option] = getattr(spec, option)
    path = cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}"
    where = {k: v for k, v in kwargs.items() if k in LOCATION_OPTIONS}
    if isinstance(where.get("endpoint_url"), str):
        where["endpoint_url"] = url_without_credentials(where["endpoint_url"])
    return {"class": path, **where}


def location_identity(
    local: Any, local_options: dict[str, Any], remote: Any, remote_options: dict[str, Any]
) -> dict[str, Any]:
    """What defines a QueuedStorage's files: where its local and remote
    storages keep them. Behaviour (hooks, delayed, ...) and credentials
    are not part of it."""
    return {"local": _where(local, local_options), "remote": _where(remote, remote_options)}
