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
* ``storage_hooks.E012``: ``PROOF`` is not one of "auto", "checksum",
  "readback", "size".
* ``storage_hooks.E013``: ``HOST_QUEUES`` is not a bool, or ``HOSTNAME`` not
  a non-empty string.
* ``storage_hooks.E014``: the runner is not "immediate" and the cache lives
  in each process (``LocMemCache``).
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

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import FileSystemStorage, storages
from django.utils.module_loading import import_string

from . import registry
from .conf import DEFAULTS, PROOFS, conf
from .credentials import credential_options
from .installed import check_installed
from .project import unsafe_root
from .runners import Runner, get_runner, runner_path
from .runners.immediate import ImmediateRunner

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
)

Messages = list[checks.CheckMessage]


def _error(msg: str, number: int, hint: str | None = None, obj: Any = None) -> checks.Error:
    return checks.Error(msg, hint=hint, obj=obj, id=f"storage_hooks.E{number:03d}")


def _warning(msg: str, number: int, hint: str | None = None, obj: Any = None) -> checks.Warning:
    return checks.Warning(msg, hint=hint, obj=obj, id=f"storage_hooks.W{number:03d}")


# -- settings ----------------------------------------------------------------


@checks.register()
def check_settings(**kwargs: Any) -> Messages:
    """Every check of ``STORAGE_HOOKS`` and of what it names."""
    if not isinstance(getattr(settings, "STORAGE_HOOKS", {}), dict):
        return [
            _error(
                "STORAGE_HOOKS must be a dict.",
                5,
                hint='Write STORAGE_HOOKS = {"RUNNER": "celery", ...}; see the settings reference.',
            )
        ]
    messages: Messages = [
        _error(
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
        _error(f"STORAGE_HOOKS[{name!r}] must be a number >= 0, not {value!r}.", 7)
        for name in NUMBERS
        if not _is_number(value := getattr(conf, name))
    ]
    if not isinstance(conf.QUEUE, str) or not conf.QUEUE:
        messages.append(
            _error(f"STORAGE_HOOKS['QUEUE'] must be a non-empty string, not {conf.QUEUE!r}.", 9)
        )
    if not isinstance(conf.CONDITIONAL_WRITES, bool) and conf.CONDITIONAL_WRITES != "only":
        messages.append(
            _error(
                "STORAGE_HOOKS['CONDITIONAL_WRITES'] must be True, False or \"only\", not "
                f"{conf.CONDITIONAL_WRITES!r}.",
                10,
            )
        )
    if conf.DATABASE is not None and conf.DATABASE not in settings.DATABASES:
        messages.append(
            _error(
                f"STORAGE_HOOKS['DATABASE'] is {conf.DATABASE!r}, which is not an alias of "
                "DATABASES.",
                11,
                hint="Leave it out (the routers decide) or use one of: "
                f"{', '.join(sorted(settings.DATABASES))}.",
            )
        )
    if conf.PROOF not in PROOFS:
        messages.append(
            _error(
                f"STORAGE_HOOKS['PROOF'] must be one of {', '.join(map(repr, PROOFS))}, not "
                f"{conf.PROOF!r}.",
                12,
                hint='Leave it out: "auto" uses the strongest proof each remote offers.',
            )
        )
    if not isinstance(conf.HOST_QUEUES, bool):
        messages.append(
            _error(
                f"STORAGE_HOOKS['HOST_QUEUES'] must be True or False, not {conf.HOST_QUEUES!r}.", 13
            )
        )
    if conf.HOSTNAME is not None and (not isinstance(conf.HOSTNAME, str) or not conf.HOSTNAME):
        messages.append(
            _error(
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
            _error(
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
            _error(
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
            _warning(
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
        return [_error(str(exc), 2)]
    messages: Messages = [_error(problem, 2) for problem in runner.check()]
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
            _warning(
                f"STORAGE_HOOKS['RETRY_DELAY_MAX'] ({conf.RETRY_DELAY_MAX}s) is not below the "
                f"broker's visibility timeout ({timeout}s): a worker holds a retry until its "
                "countdown ends, and the broker would give it to a second worker meanwhile.",
                1,
                hint="Lower RETRY_DELAY_MAX or raise CELERY_BROKER_TRANSPORT_OPTIONS"
                "['visibility_timeout'].",
            )
        ]
    return []


# -- storages ----------------------------------------------------------------


@checks.register()
def check_storages(**kwargs: Any) -> Messages:
    """Every check of the QueuedStorages this process knows."""
    messages = _check_storages_entries()
    aliases = registry.configured_storages()
    for storage in registry.known_storages():
        built = _check_parts(storage)
        messages += built
        messages += _check_key(storage, aliases)
        messages += _check_credentials(storage)
        if not built:
            messages += _check_local_root(storage)
    return _dedupe(messages)


def _check_storages_entries() -> Messages:
    messages: Messages = []
    for alias, entry in settings.STORAGES.items():
        if not str(entry.get("BACKEND", "")).startswith("storage_hooks."):
            continue
        try:
            storage = storages[alias]
            # A FallbackStorage builds its backends lazily: build them now.
            getattr(storage, "backends", None)
        except Exception as exc:
            messages.append(_error(f"STORAGES[{alias!r}] cannot be built: {exc}", 4))
    return messages


def _check_parts(storage: Any) -> Messages:
    messages: Messages = []
    for part in ("local", "remote", "hooks"):
        if not hasattr(type(storage), part):
            continue
        try:
            getattr(storage, part)
        except Exception as exc:
            messages.append(_error(f"The QueuedStorage {storage.key!r} has a bad {part}: {exc}", 4))
    return messages


def _explicit_key(storage: Any) -> bool:
    """Whether the storage's key is named (``key=`` or a STORAGES alias)."""
    explicit = getattr(storage, "has_explicit_key", None)
    if explicit is not None:
        return bool(explicit)
    _, _, kwargs = storage.deconstruct()
    return bool(kwargs.get("key"))


def _key_max_length() -> int | None:
    """The longest key the ledger holds (``models.KEY_MAX_LENGTH``), read
    from the model so that this module loads before the models do."""
    if not apps.is_installed("storage_hooks"):
        return None  # E006
    field = apps.get_model("storage_hooks", "StoredFile")._meta.get_field("storage_key")
    return getattr(field, "max_length", None)


def _check_key(storage: Any, aliases: dict[str, Any]) -> Messages:
    key = str(storage.key)
    messages: Messages = []
    limit = _key_max_length()
    if limit is not None and len(key) > limit:
        messages.append(
            _error(
                f"The storage key {key[:40]!r}... is {len(key)} characters long; the ledger "
                f"holds keys of up to {limit}.",
                8,
                hint="Choose a shorter STORAGES alias or key=.",
            )
        )
    named = key in settings.STORAGES or _explicit_key(storage) or storage in aliases.values()
    if not named:
        messages.append(
            _warning(
                f"The QueuedStorage {key!r} has neither a STORAGES alias nor a key=: its key "
                "is derived from where its files live, so moving them (another location, "
                "bucket or remote) gives it another key, and the ledger no longer knows its "
                "files.",
                3,
                hint="Define it in settings.STORAGES and use it by its alias (e.g. "
                "FileField(storage=lambda: storages['photos'])), or pass a stable "
                "key='photos' where it is built.",
            )
        )
    return messages


def _check_credentials(storage: Any) -> Messages:
    # What a migration of a field using this storage would hold...
    _, args, kwargs = storage.deconstruct()
    written = credential_options(list(args), "args") + credential_options(
        {k: v for k, v in kwargs.items() if k != "key"}
    )
    # ...and what the storage was given (storage_hooks leaves credentials
    # out of migrations and pickles). Django's @deconstructible keeps the
    # arguments as given in _constructor_args (Django 5.2 and 6.x).
    given_args, given_kwargs = getattr(storage, "_constructor_args", ((), {}))
    given = credential_options(list(given_args), "args") + credential_options(
        {k: v for k, v in given_kwargs.items() if k != "key"}
    )
    dropped = [place for place in given if place not in written]
    if not (written or dropped):
        return []
    places = ", ".join([*written, *dropped][:5])
    why = []
    if written:
        why.append(
            "they are written in plain text into every migration of a model field that uses "
            "it, and into every pickle of it"
        )
    if dropped:
        why.append(
            "storage_hooks leaves them out of migrations and pickles, so a storage rebuilt from "
            "those (by a migration, or unpickled where no storage of its key is registered) "
            "has none and cannot transfer"
        )
    return [
        _warning(
            f"The QueuedStorage {storage.key!r} is built with credentials in its options "
            f"({places}): {'; and '.join(why)}.",
            4,
            hint="Define the remote as its own STORAGES alias whose OPTIONS read the "
            "credentials from the environment (or leave them to the provider's usual "
            "sources, such as AWS_ACCESS_KEY_ID), and give the QueuedStorage remote='<alias>'.",
        )
    ]


def _check_local_root(storage: Any) -> Messages:
    local = storage.local
    if not isinstance(local, FileSystemStorage):
        return []
    reason = unsafe_root(local.location)
    if reason is None:
        return []
    return [
        _error(
            f"The local storage of the QueuedStorage {storage.key!r} keeps its files in "
            f"{local.location}, which is {reason}: uploads would be written among the "
            "project's files, and 'storage_hooks sync' would take those for uploads.",
            15,
            hint="Give the local storage a directory of its own, e.g. OPTIONS {'location': "
            "BASE_DIR / 'media'}, or set MEDIA_ROOT.",
        )
    ]


def _dedupe(messages: Messages) -> Messages:
    seen: set[tuple[str, str]] = set()
    unique = []
    for message in messages:
        if (str(message.id), message.msg) not in seen:
            seen.add((str(message.id), message.msg))
            unique.append(message)
    return unique
