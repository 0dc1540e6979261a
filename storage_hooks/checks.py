"""System checks: misconfiguration shows at ``manage.py check``, not at the
first upload.

Ids: storage_hooks.E001 unknown STORAGE_HOOKS key, E002 runner, E003 cache
alias, E004 a QueuedStorage that cannot be built (local, remote, hooks),
E005 a bad setting value, E006 the app is not in INSTALLED_APPS;
W001 retry delays that outlast the broker's visibility timeout.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from .conf import DEFAULTS, conf

# The Redis and SQS transports redeliver an unacknowledged message after
# this many seconds unless configured otherwise.
DEFAULT_VISIBILITY_TIMEOUT = 3600


@checks.register()
def check_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not isinstance(getattr(settings, "STORAGE_HOOKS", {}), dict):
        return [checks.Error("STORAGE_HOOKS must be a dict.", id="storage_hooks.E005")]
    for key in conf.unknown_keys():
        errors.append(
            checks.Error(
                f"STORAGE_HOOKS has an unknown key {key!r}.",
                hint="Known keys: " + ", ".join(sorted(DEFAULTS)) + ".",
                id="storage_hooks.E001",
            )
        )
    numbers = ("RETRIES", "RETRY_DELAY", "RETRY_DELAY_MAX", "CACHE_TIMEOUT", "STUCK_AFTER")
    for name in (*numbers, "MEMORY_SIZE", "MEMORY_TIMEOUT"):
        value = getattr(conf, name)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            errors.append(
                checks.Error(
                    f"STORAGE_HOOKS[{name!r}] must be a number >= 0, not {value!r}.",
                    id="storage_hooks.E005",
                )
            )
    if not isinstance(conf.QUEUE, str) or not conf.QUEUE:
        errors.append(
            checks.Error(
                f"STORAGE_HOOKS['QUEUE'] must be a non-empty string, not {conf.QUEUE!r}.",
                id="storage_hooks.E005",
            )
        )
    if not isinstance(conf.CONDITIONAL_WRITES, bool) and conf.CONDITIONAL_WRITES != "only":
        errors.append(
            checks.Error(
                "STORAGE_HOOKS['CONDITIONAL_WRITES'] must be True, False or \"only\", not "
                f"{conf.CONDITIONAL_WRITES!r}.",
                id="storage_hooks.E005",
            )
        )
    if conf.DATABASE is not None and conf.DATABASE not in settings.DATABASES:
        errors.append(
            checks.Error(
                f"STORAGE_HOOKS['DATABASE'] is {conf.DATABASE!r}, which is not an alias of "
                "DATABASES.",
                hint="Leave it out (the routers decide) or use one of: "
                f"{', '.join(sorted(settings.DATABASES))}.",
                id="storage_hooks.E005",
            )
        )
    if conf.CACHE not in settings.CACHES:
        errors.append(
            checks.Error(
                f"STORAGE_HOOKS['CACHE'] is {conf.CACHE!r}, which is not an alias of CACHES.",
                hint=f"Use one of: {', '.join(sorted(settings.CACHES))}.",
                id="storage_hooks.E003",
            )
        )
    errors += _check_runner()
    return errors


def _check_runner() -> list[checks.CheckMessage]:
    from .runners import get_runner

    try:
        runner = get_runner()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="storage_hooks.E002")]
    errors: list[checks.CheckMessage] = [
        checks.Error(problem, id="storage_hooks.E002") for problem in runner.check()
    ]
    if conf.RUNNER == "celery":
        errors += _check_visibility_timeout()
    return errors


def _celery_transport_options() -> dict[str, Any]:
    """The broker transport options: the Django setting Celery reads with the
    usual ``namespace="CELERY"``, else the current Celery app's (a project
    that configures Celery in its ``celery.py``)."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None)
    if options is None:
        try:
            from celery import current_app
        except ImportError:
            return {}
        options = current_app.conf.broker_transport_options
    return dict(options or {})


def _check_visibility_timeout() -> list[checks.CheckMessage]:
    timeout = _celery_transport_options().get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    if float(conf.RETRY_DELAY_MAX) >= float(timeout):
        return [
            checks.Warning(
                f"STORAGE_HOOKS['RETRY_DELAY_MAX'] ({conf.RETRY_DELAY_MAX}s) is not below the "
                f"broker's visibility timeout ({timeout}s): a worker holds a retry until its "
                "countdown ends, and the broker would give it to a second worker meanwhile.",
                hint="Lower RETRY_DELAY_MAX or raise CELERY_BROKER_TRANSPORT_OPTIONS"
                "['visibility_timeout'].",
                id="storage_hooks.W001",
            )
        ]
    return []


@checks.register()
def check_storages(**kwargs: Any) -> list[checks.CheckMessage]:
    from .registry import known_storages
    from .storage import QueuedStorage

    errors: list[checks.CheckMessage] = []
    for alias, entry in settings.STORAGES.items():
        backend = entry.get("BACKEND", "")
        if not str(backend).startswith("storage_hooks."):
            continue
        try:
            from django.core.files.storage import storages

            storage = storages[alias]
            # A FallbackStorage builds its backends lazily: build them now.
            getattr(storage, "backends", None)
        except Exception as exc:
            errors.append(
                checks.Error(
                    f"STORAGES[{alias!r}] cannot be built: {exc}",
                    id="storage_hooks.E004",
                )
            )
    for storage in known_storages():
        if not isinstance(storage, QueuedStorage):
            continue
        for part in ("local", "remote", "hooks"):
            try:
                getattr(storage, part)
            except Exception as exc:
                errors.append(
                    checks.Error(
                        f"The QueuedStorage {storage.key!r} has a bad {part}: {exc}",
                        id="storage_hooks.E004",
                    )
                )
    return _dedupe(errors)


def _dedupe(errors: list[checks.CheckMessage]) -> list[checks.CheckMessage]:
    seen: set[str] = set()
    unique = []
    for error in errors:
        if error.msg not in seen:
            seen.add(error.msg)
            unique.append(error)
    return unique


def check_installed(**kwargs: Any) -> list[checks.CheckMessage]:
    if apps.is_installed("storage_hooks"):
        return []
    return [
        checks.Error(
            "QueuedStorage is used but 'storage_hooks' is not in INSTALLED_APPS.",
            hint="Add 'storage_hooks' to INSTALLED_APPS and run 'manage.py migrate': the "
            "ledger is a table of this app.",
            id="storage_hooks.E006",
        )
    ]
