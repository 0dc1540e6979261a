"""System checks: misconfiguration shows at ``manage.py check``, not at the
first upload. Each problem has its own id, so each can be silenced alone
(``SILENCED_SYSTEM_CHECKS``); docs/checks.rst says how to fix each one.

Settings:

* ``storage_hooks.E001``: ``STORAGE_HOOKS`` has an unknown key.
* ``storage_hooks.E002``: the runner cannot be used.
* ``storage_hooks.E003``: ``CACHE`` is not an alias of ``CACHES``.
* ``storage_hooks.E005``: ``STORAGE_HOOKS`` is not a dict.
* ``storage_hooks.E007``: a count or a number of seconds is not a number >= 0.
* ``storage_hooks.E009``: ``QUEUE`` is not a non-empty string.
* ``storage_hooks.E010``: ``CONDITIONAL_WRITES`` is not True, False or "only".
* ``storage_hooks.E011``: ``DATABASE`` is not an alias of ``DATABASES``.
* ``storage_hooks.E012``: ``PROOF`` is not one of "auto", "readback", "size".
* ``storage_hooks.E013``: ``HOST_QUEUES`` is not a bool, or ``HOSTNAME`` not
  a non-empty string.
* ``storage_hooks.E014``: the runner is not "immediate" and the cache lives
  in each process (``LocMemCache``).
* ``storage_hooks.E016``: ``PUBLISH`` is not "background" or "inline".
* ``storage_hooks.W001``: ``RETRY_DELAY_MAX`` is not below the Celery
  broker's visibility timeout.
* ``storage_hooks.W002``: the runner is not "immediate" and the cache is a
  ``FileBasedCache`` (shared on one host only).

Storages:

* ``storage_hooks.E004``: a QueuedStorage cannot be built.
* ``storage_hooks.E006``: the app is not in ``INSTALLED_APPS``
  (:mod:`storage_hooks.installed`).
* ``storage_hooks.E008``: a storage key is longer than the ledger holds.
* ``storage_hooks.E015``: a local root is the project (or contains it).
* ``storage_hooks.W003``: a QueuedStorage with neither a STORAGES alias nor
  ``key=``.
* ``storage_hooks.W004``: a QueuedStorage built with credentials in its
  options (written into migrations and pickles, or left out of them so that
  rebuilt copies have none).
"""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .conf import DEFAULTS, PROOFS, PUBLISHES, conf
from .installed import check_installed
from .runners import Runner, get_runner, runner_path
from .runners.immediate import ImmediateRunner
from .storage_checks import Messages, check_storages, error, warning

__all__ = ["check_installed", "check_settings", "check_storages"]

# The Redis and SQS transports redeliver an unacknowledged message after
# this many seconds unless configured otherwise.
DEFAULT_VISIBILITY_TIMEOUT = 3600

#: Settings that are a count or a number of seconds (>= 0).
NUMBERS = (
    "RETRIES",
    "RETRY_DELAY",
    "RETRY_DELAY_MAX",
    "CACHE_TIMEOUT",
    "LOG_CACHE_ERRORS_EVERY",
    "MEMORY_SIZE",
    "MEMORY_TIMEOUT",
    "STUCK_AFTER",
    "BATCH_SIZE",
    "BATCH_THREADS",
    "MULTIPART_UPLOADS",
)

# -- settings ----------------------------------------------------------------


@checks.register()
def check_settings(**kwargs: Any) -> Messages:
    """Every check of ``STORAGE_HOOKS`` and of what it names."""
    if not isinstance(getattr(settings, "STORAGE_HOOKS", {}), dict):
        return [
            error(
                "STORAGE_HOOKS must be a dict.",
                5,
                hint='Write STORAGE_HOOKS = {"RUNNER": "celery", ...}; see the settings reference.',
            )
        ]
    messages: Messages = [
        error(
            f"STORAGE_HOOKS has an unknown key {key!r}.",
            1,
            hint="Known keys: " + ", ".join(sorted(DEFAULTS)) + ".",
        )
        for key in conf.unknown_keys()
    ]
    messages += _check_values()
    messages += _check_cache()
    messages += _check_runner()
    return messages


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _check_values() -> Messages:
    messages: Messages = [
        error(f"STORAGE_HOOKS[{name!r}] must be a number >= 0, not {value!r}.", 7)
        for name in NUMBERS
        if not _is_number(value := getattr(conf, name))
    ]
    if not isinstance(conf.QUEUE, str) or not conf.QUEUE:
        messages.append(
            error(f"STORAGE_HOOKS['QUEUE'] must be a non-empty string, not {conf.QUEUE!r}.", 9)
        )
    if not isinstance(conf.CONDITIONAL_WRITES, bool) and conf.CONDITIONAL_WRITES != "only":
        messages.append(
            error(
                "STORAGE_HOOKS['CONDITIONAL_WRITES'] must be True, False or \"only\", not "
                f"{conf.CONDITIONAL_WRITES!r}.",
                10,
            )
        )
    if conf.DATABASE is not None and conf.DATABASE not in settings.DATABASES:
        messages.append(
            error(
                f"STORAGE_HOOKS['DATABASE'] is {conf.DATABASE!r}, which is not an alias of "
                "DATABASES.",
                11,
                hint="Leave it out (the routers decide) or use one of: "
                f"{', '.join(sorted(settings.DATABASES))}.",
            )
        )
    if conf.PROOF not in PROOFS:
        messages.append(
            error(
                f"STORAGE_HOOKS['PROOF'] must be one of {', '.join(map(repr, PROOFS))}, not "
                f"{conf.PROOF!r}.",
                12,
                hint='Leave it out: "auto" uses the strongest proof each remote offers.',
            )
        )
    if conf.PUBLISH not in PUBLISHES:
        messages.append(
            error(
                f"STORAGE_HOOKS['PUBLISH'] must be one of {', '.join(map(repr, PUBLISHES))}, "
                f"not {conf.PUBLISH!r}.",
                16,
                hint='Leave it out: "background" sends transfer messages without making the '
                "request wait.",
            )
        )
    if not isinstance(conf.HOST_QUEUES, bool):
        messages.append(
            error(
                f"STORAGE_HOOKS['HOST_QUEUES'] must be True or False, not {conf.HOST_QUEUES!r}.", 13
            )
        )
    if conf.HOSTNAME is not None and (not isinstance(conf.HOSTNAME, str) or not conf.HOSTNAME):
        messages.append(
            error(
                f"STORAGE_HOOKS['HOSTNAME'] must be a non-empty string or None, not "
                f"{conf.HOSTNAME!r}.",
                13,
            )
        )
    return messages


def _runs_in_process() -> bool | None:
    """Whether transfers run in the saving process (the immediate runner);
    ``None`` when the runner cannot be imported (E002 says so)."""
    try:
        cls = import_string(runner_path())
    except ImportError:
        return None
    if not (isinstance(cls, type) and issubclass(cls, Runner)):
        return None
    return issubclass(cls, ImmediateRunner)


def _check_cache() -> Messages:
    entry = settings.CACHES.get(conf.CACHE) if isinstance(conf.CACHE, str) else None
    if entry is None:
        return [
            error(
                f"STORAGE_HOOKS['CACHE'] is {conf.CACHE!r}, which is not an alias of CACHES.",
                3,
                hint=f"Use one of: {', '.join(sorted(settings.CACHES))}.",
            )
        ]
    if _runs_in_process() is not False:
        return []
    try:
        backend = import_string(str(entry.get("BACKEND", "")))
    except ImportError:
        return []  # Django's own checks and the first use say so
    if not isinstance(backend, type):
        return []
    where = f"CACHES[{conf.CACHE!r}]"
    if issubclass(backend, LocMemCache):
        return [
            error(
                f"{where} is a {backend.__name__}, which each process keeps to itself, and "
                f"the transfers run in other processes (RUNNER {conf.RUNNER!r}): a web "
                "process would go on serving a file from its local copy after the worker "
                "moved it, a 404 once the local copy is deleted.",
                14,
                hint="Use a cache every process shares (Redis, Memcached, the database cache), "
                "or point STORAGE_HOOKS['CACHE'] at one: e.g. CACHES['storage_hooks'] = "
                "{'BACKEND': 'django.core.cache.backends.redis.RedisCache', 'LOCATION': "
                "'redis://127.0.0.1:6379/1'} and STORAGE_HOOKS['CACHE'] = 'storage_hooks'.",
            )
        ]
    if issubclass(backend, FileBasedCache):
        return [
            warning(
                f"{where} is a FileBasedCache: processes share it on one host only. With "
                "web servers or workers on several hosts, each host serves stale statuses.",
                2,
                hint="Fine for one host. For several, use a shared cache (Redis, Memcached, "
                "the database cache); silence storage_hooks.W002 otherwise.",
            )
        ]
    return []


def _check_runner() -> Messages:
    try:
        runner = get_runner()
    except ImproperlyConfigured as exc:
        return [error(str(exc), 2)]
    messages: Messages = [error(problem, 2) for problem in runner.check()]
    if conf.RUNNER == "celery":
        messages += _check_visibility_timeout()
    return messages


def _celery_transport_options() -> dict[str, Any]:
    """The broker transport options: the Django setting Celery reads with the
    usual ``namespace="CELERY"``, else the current Celery app's (a project
    that configures Celery in its ``celery.py``)."""
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None)
    if options is None:
        try:
            from celery import current_app  # optional dependency
        except ImportError:
            return {}
        options = current_app.conf.broker_transport_options
    return dict(options or {})


def _check_visibility_timeout() -> Messages:
    if not _is_number(conf.RETRY_DELAY_MAX):
        return []  # E007
    timeout = _celery_transport_options().get("visibility_timeout", DEFAULT_VISIBILITY_TIMEOUT)
    if float(conf.RETRY_DELAY_MAX) >= float(timeout):
        return [
            warning(
                f"STORAGE_HOOKS['RETRY_DELAY_MAX'] ({conf.RETRY_DELAY_MAX}s) is not below the "
                f"broker's visibility timeout ({timeout}s): a worker holds a retry until its "
                "countdown ends, and the broker would give it to a second worker meanwhile.",
                1,
                hint="Lower RETRY_DELAY_MAX or raise CELERY_BROKER_TRANSPORT_OPTIONS"
                "['visibility_timeout'].",
            )
        ]
    return []
