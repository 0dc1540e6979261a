"""What may be shown of an error, and to whom.

Two audiences read about a failed transfer:

* **visitors** of a site get :func:`public_message` of the failure's kind
  (the ledger's ``failure`` column): a short, fixed sentence that names no
  path, host, bucket or key;
* **staff** (the ledger's admin, logs) get the full text, passed through
  :func:`redact` first: local root paths made relative, and URLs stripped of
  credentials and of query strings (which carry request signatures).

Hosts and bucket names stay in the redacted text: staff need them, and the
ledger is staff-only. Never show ``last_error`` to visitors, redacted or not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

#: One sentence per failure kind (see ``storage_hooks.exceptions``).
PUBLIC_MESSAGES = {
    "conflict": "This file could not be published: another file already has its name.",
    "rejected": "This file was refused and will not be published.",
    "verification": "This file could not be published: its copy could not be verified.",
    "missing": "This file could not be published: it is missing.",
    "deleted": "This file was deleted.",
    "error": "This file could not be published yet.",
}
#: For a kind this version does not know.
DEFAULT_PUBLIC_MESSAGE = "This file could not be published."

#: Put where a secret was removed.
REDACTED = "<redacted>"
#: Put where a local root was, when the path is the root itself.
LOCAL = "<local>"


def public_message(kind: str | None) -> str:
    """The sentence a visitor may read about a failure of ``kind``
    (``"conflict"``, ``"rejected"``, ``"verification"``, ``"missing"``,
    ``"deleted"``, ``"error"``); another one for any other kind."""
    return PUBLIC_MESSAGES.get(kind or "", DEFAULT_PUBLIC_MESSAGE)


# -- redaction ---------------------------------------------------------------

# A URL: a scheme, "://", then anything up to white space or a quote.
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^\s'\"<>`]+)")
# Signed-request parameters, also outside a URL (botocore quotes them in
# errors, an Authorization header in a debug line).
_SECRET_PARAM = re.compile(
    r"(?i)\b(X-Amz-[A-Za-z-]+|AWSAccessKeyId|Signature|Credential|sig|"
    r"token|access_token|security_token|session_token|password|secret|api_key|apikey)"
    r"=([^\s&,;'\"]+)"
)
# An AWS access key id (AKIA..., ASIA...) wherever it appears.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{12,}\b")


def _clean_url(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    # Trailing punctuation belongs to the sentence, not to the URL.
    trail = ""
    while rest and rest[-1] in ".,;:)]}":
        trail = rest[-1] + trail
        rest = rest[:-1]
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = authority.rsplit("@", 1)[1]
    path = slash + path
    for mark in ("?", "#"):
        if mark in authority:  # "host?query" with no path
            authority, _, tail = authority.partition(mark)
            path = mark + tail + path
    cut = min((i for i in (path.find("?"), path.find("#")) if i >= 0), default=-1)
    if cut >= 0:
        path = path[:cut] + ("?" + REDACTED if path[cut] == "?" else "")
    return f"{scheme}://{authority}{path}{trail}"


def _root_forms(roots: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Each root as given, absolute and resolved, longest first (so a root
    inside another is replaced before its parent)."""
    forms: set[str] = set()
    for root in roots:
        text = os.fspath(root)
        if not text:
            continue
        for form in (text, os.path.abspath(text), os.path.realpath(text)):
            form = form.rstrip("/\\") or form
            if form and form not in ("/", "\\"):
                forms.add(form)
    return sorted(forms, key=len, reverse=True)


def _relative(text: str, roots: list[str]) -> str:
    for root in roots:
        # "<root>/photos/a.jpg" -> "photos/a.jpg"; the root alone -> <local>.
        pattern = re.compile(re.escape(root) + r"(?P<sep>[/\\]+)?(?(sep)|(?![\w-]|\.\w))")
        text = pattern.sub(lambda m: "" if m.group("sep") else LOCAL, text)
    return text


def redact(text: str, *, roots: Iterable[str | os.PathLike[str]] = ()) -> str:
    """``text`` (an exception's message) made fit for the ledger and logs.

    * every path under one of ``roots`` (the local storages' locations) is
      made relative to it, and a root named alone becomes ``<local>``;
    * URLs lose their user info (``user:password@``) and their query string
      and fragment (signatures, tokens);
    * signed-request parameters (``X-Amz-Signature=``, ``X-Amz-Credential=``,
      ``AWSAccessKeyId=``, ``Signature=``, ``sig=``, ``token=``...) and AWS
      access key ids are replaced by ``<redacted>`` wherever they appear.

    Hosts and bucket names are kept: the result is for staff, not visitors
    (they get :func:`public_message`).
    """
    text = _relative(str(text), _root_forms(roots))
    text = _URL.sub(_clean_url, text)
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={REDACTED}", text)
    return _ACCESS_KEY_ID.sub(REDACTED, text)
