"""Settings (storage_hooks.conf): one dict read when used, defaults, and
django-queued-storage's settings where STORAGE_HOOKS is silent."""

from __future__ import annotations

import pytest
from django.test import override_settings

from storage_hooks.conf import DEFAULTS, conf


@override_settings(STORAGE_HOOKS={})
def test_defaults_when_storage_hooks_is_silent() -> None:
    for name, default in DEFAULTS.items():
        assert getattr(conf, name) == default
    assert conf.RUNNER == "celery"
    assert conf.QUEUE == "storage_hooks"
    assert (conf.RETRIES, conf.RETRY_DELAY) == (5, 60)
    assert (conf.CACHE, conf.CACHE_PREFIX) == ("default", "storage_hooks")


def test_settings_are_read_when_used() -> None:
    assert conf.RUNNER == "immediate"  # tests/settings.py
    with override_settings(STORAGE_HOOKS={"RUNNER": "tasks", "RETRIES": 2}):
        assert (conf.RUNNER, conf.RETRIES) == ("tasks", 2)
        assert conf.QUEUE == "storage_hooks"
    assert (conf.RUNNER, conf.RETRIES) == ("immediate", 5)


def test_legacy_settings_count_where_storage_hooks_is_silent() -> None:
    legacy = {
        "QUEUED_STORAGE_RETRIES": 9,
        "QUEUED_STORAGE_RETRY_DELAY": 7,
        "QUEUED_STORAGE_CACHE_PREFIX": "old",
    }
    with override_settings(STORAGE_HOOKS={}, **legacy):
        assert (conf.RETRIES, conf.RETRY_DELAY, conf.CACHE_PREFIX) == (9, 7, "old")
    with override_settings(STORAGE_HOOKS={"RETRIES": 1, "CACHE_PREFIX": "new"}, **legacy):
        assert (conf.RETRIES, conf.RETRY_DELAY, conf.CACHE_PREFIX) == (1, 7, "new")


def test_unknown_keys_are_reported_not_used() -> None:
    with override_settings(STORAGE_HOOKS={"RETRYS": 3, "RETRIES": 1}):
        assert conf.unknown_keys() == ["RETRYS"]
        assert conf.RETRIES == 1
    with pytest.raises(AttributeError):
        conf.RETRYS  # noqa: B018


def test_a_storage_hooks_setting_that_is_no_dict_is_ignored_here() -> None:
    with override_settings(STORAGE_HOOKS=["RUNNER", "tasks"]):
        assert conf.RUNNER == "celery"  # and check() reports storage_hooks.E005


def test_every_key_is_a_typed_property_of_its_own() -> None:
    properties = {
        name for name, value in vars(type(conf)).items() if isinstance(value, property)
    } - {"user_settings"}
    assert properties == set(DEFAULTS)
    for name in DEFAULTS:
        prop = vars(type(conf))[name]
        assert prop.__doc__, name
        assert "return" in prop.fget.__annotations__, name


@override_settings(STORAGE_HOOKS={})
def test_the_round_two_settings_and_their_defaults() -> None:
    assert conf.PROOF == "auto"
    assert conf.LOG_CACHE_ERRORS_EVERY == 60
    with override_settings(STORAGE_HOOKS={"PROOF": "readback", "LOG_CACHE_ERRORS_EVERY": 5}):
        assert (conf.PROOF, conf.LOG_CACHE_ERRORS_EVERY) == ("readback", 5)


def test_a_changed_setting_is_seen_at_once() -> None:
    from django.conf import settings

    assert conf.QUEUE == "storage_hooks"
    with override_settings(STORAGE_HOOKS={"QUEUE": "files"}):
        assert conf.QUEUE == "files"
        # A test changing the dict through pytest-django's fixture sends
        # setting_changed too; a legacy name changes the merged values.
        with override_settings(QUEUED_STORAGE_RETRIES=2):
            assert conf.RETRIES == 2
    assert conf.QUEUE == "storage_hooks"
    assert settings.STORAGE_HOOKS == {"RUNNER": "immediate"}


def test_hostname_is_the_setting_or_the_machines_name() -> None:
    import socket

    from storage_hooks.conf import hostname

    assert hostname() == socket.gethostname()
    with override_settings(STORAGE_HOOKS={"HOSTNAME": "web-1"}):
        assert hostname() == "web-1"


def test_proof_takes_the_modes_the_proof_module_knows() -> None:
    from storage_hooks.conf import PROOFS
    from storage_hooks.proof import MODES

    assert set(PROOFS) == set(MODES)
