"""What may be shown of an error (storage_hooks.errors): a fixed sentence per
failure kind for visitors, and redacted text for staff."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage_hooks import exceptions
from storage_hooks.errors import DEFAULT_PUBLIC_MESSAGE, PUBLIC_MESSAGES, public_message, redact

KINDS = ["conflict", "rejected", "verification", "missing", "deleted", "error"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_failure_kind_has_its_own_short_sentence(kind: str) -> None:
    message = public_message(kind)
    assert message == PUBLIC_MESSAGES[kind]
    assert message != DEFAULT_PUBLIC_MESSAGE
    assert message.endswith(".")
    assert len(message) < 100


def test_every_kind_the_exceptions_define_has_a_sentence() -> None:
    classes = [
        value
        for value in vars(exceptions).values()
        if isinstance(value, type) and issubclass(value, exceptions.TransferError)
    ]
    assert {cls.kind for cls in classes} <= set(PUBLIC_MESSAGES)
    assert len(set(PUBLIC_MESSAGES.values())) == len(PUBLIC_MESSAGES)


@pytest.mark.parametrize("kind", ["", None, "quota", "<script>"])
def test_an_unknown_kind_gets_the_default_sentence(kind: str | None) -> None:
    assert public_message(kind) == DEFAULT_PUBLIC_MESSAGE


def test_paths_under_a_root_become_relative(tmp_path: Path) -> None:
    root = tmp_path / "media"
    text = f"Refused to follow the symlink {root}/photos/a.jpg (outside {root})."
    assert redact(text, roots=[root]) == (
        "Refused to follow the symlink photos/a.jpg (outside <local>)."
    )


def test_a_root_given_with_a_slash_or_through_a_symlink_is_found(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    text = f"{real}/a.txt changed; {link}/b.txt too"
    assert redact(text, roots=[f"{link}/"]) == "a.txt changed; b.txt too"


def test_a_longer_root_wins_and_a_sibling_is_left_alone(tmp_path: Path) -> None:
    outer, inner = tmp_path / "m", tmp_path / "m" / "thumbs"
    text = f"{inner}/x.webp {outer}/y.jpg {outer}2/z.jpg {outer}.bak"
    assert redact(text, roots=[outer, inner]) == f"x.webp y.jpg {outer}2/z.jpg {outer}.bak"


def test_without_roots_paths_are_kept() -> None:
    assert redact("/srv/media/a.jpg is gone") == "/srv/media/a.jpg is gone"


def test_a_presigned_url_loses_its_credentials_and_signature() -> None:
    url = (
        "https://AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI@gallery.s3.eu-west-1.amazonaws.com/"
        "photos/a.jpg?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE"
        "%2F20261129%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=5d67a1c0ffee#frag"
    )
    cleaned = redact(f"PUT {url} failed.")
    assert cleaned == (
        "PUT https://gallery.s3.eu-west-1.amazonaws.com/photos/a.jpg?<redacted> failed."
    )
    for secret in ("AKIA", "wJalr", "5d67a1", "X-Amz", "frag"):
        assert secret not in cleaned


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:hunter2@cache:6379/0 is down", "redis://cache:6379/0 is down"),
        (
            "postgres://app:pw@db.internal/ledger refused",
            "postgres://db.internal/ledger refused",
        ),
        (
            "GET https://acct.blob.core.windows.net/c/a.jpg?sv=2024&sig=abc%2B (403)",
            "GET https://acct.blob.core.windows.net/c/a.jpg?<redacted> (403)",
        ),
        (
            'Could not connect to the endpoint URL: "http://minio:9000/gallery/a.jpg"',
            'Could not connect to the endpoint URL: "http://minio:9000/gallery/a.jpg"',
        ),
        ("https://host?token=abc", "https://host?<redacted>"),
    ],
)
def test_urls_keep_their_host_and_path_only(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_signature_parameters_outside_a_url_are_redacted() -> None:
    text = (
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261129/us-east-1/"
        "s3/aws4_request, SignedHeaders=host, Signature=fe5f80f77d5fa3be; "
        "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1&token=xyz"
    )
    cleaned = redact(text)
    assert cleaned == (
        "Authorization: AWS4-HMAC-SHA256 Credential=<redacted>, SignedHeaders=host, "
        "Signature=<redacted>; AWSAccessKeyId=<redacted>&Expires=1&token=<redacted>"
    )


def test_a_bare_access_key_id_is_redacted() -> None:
    assert redact("The key ASIAY34FZKBOKMUTVV7A is not valid") == (
        "The key <redacted> is not valid"
    )


def test_plain_messages_pass_unchanged() -> None:
    text = "The remote already holds another file named 'photos/a.jpg' (HTTP 412)."
    assert redact(text, roots=["/srv/media"]) == text
