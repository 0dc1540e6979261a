"""System checks of the QueuedStorages a process knows (found through
:mod:`storage_hooks.registry`): E004, E008, E015, W003, W004. The ids are
listed, with the settings' ones, in :mod:`storage_hooks.checks` and in
docs/checks.rst."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.files.storage import storages

from . import registry
from .credentials import credential_options
from .project import HOW_TO_FIX, local_root, unsafe_root

Messages = list[checks.CheckMessage]


def error(msg: str, number: int, hint: str | None = None, obj: Any = None) -> checks.Error:
    """The check error ``storage_hooks.E<number>``."""
    return checks.Error(msg, hint=hint, obj=obj, id=f"storage_hooks.E{number:03d}")


def warning(msg: str, number: int, hint: str | None = None, obj: Any = None) -> checks.Warning:
    """The check warning ``storage_hooks.W<number>``."""
    return checks.Warning(msg, hint=hint, obj=obj, id=f"storage_hooks.W{number:03d}")


def _dedupe(messages: Messages) -> Messages:
    seen: set[tuple[str, str]] = set()
    unique = []
    for message in messages:
        if (str(message.id), message.msg) not in seen:
            seen.add((str(message.id), message.msg))
            unique.append(message)
    return unique


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
            messages.append(error(f"STORAGES[{alias!r}] cannot be built: {exc}", 4))
    return messages


def _check_parts(storage: Any) -> Messages:
    messages: Messages = []
    for part in ("local", "remote", "hooks"):
        if not hasattr(type(storage), part):
            continue
        try:
            getattr(storage, part)
        except Exception as exc:
            messages.append(error(f"The QueuedStorage {storage.key!r} has a bad {part}: {exc}", 4))
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
            error(
                f"The storage key {key[:40]!r}... is {len(key)} characters long; the ledger "
                f"holds keys of up to {limit}.",
                8,
                hint="Choose a shorter STORAGES alias or key=.",
            )
        )
    named = key in settings.STORAGES or _explicit_key(storage) or storage in aliases.values()
    if not named:
        messages.append(
            warning(
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
    # out of migrations and pickles). Private Django API: @deconstructible
    # keeps the arguments as given in _constructor_args, the one place the
    # dropped ones are still known (read with a default, so a change in
    # Django only loses this warning). Checked against Django 5.2, 6.0, 6.1.
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
        warning(
            f"The QueuedStorage {storage.key!r} is built with credentials in its options "
            f"({places}): {'; and '.join(why)}.",
            4,
            hint="Define the remote as its own STORAGES alias whose OPTIONS read the "
            "credentials from the environment (or leave them to the provider's usual "
            "sources, such as AWS_ACCESS_KEY_ID), and give the QueuedStorage remote='<alias>'.",
        )
    ]


def _check_local_root(storage: Any) -> Messages:
    root = local_root(storage)
    reason = None if root is None else unsafe_root(root)
    if reason is None:
        return []
    return [
        error(
            f"The local storage of the QueuedStorage {storage.key!r} keeps its files in "
            f"{root}, which is {reason}: uploads would be written among the "
            "project's files, and 'storage_hooks sync' would take those for uploads.",
            15,
            hint=HOW_TO_FIX,
        )
    ]
