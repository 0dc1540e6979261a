"""Hooks the preprocessing tests give the worker's storage (by dotted path)."""

from __future__ import annotations

from typing import Any

from django.core.files import File

from storage_hooks import signals
from storage_hooks.exceptions import Rejected
from storage_hooks.hooks import Hook, Preprocess, StripMetadata, Thumbnails


class Redact(Preprocess):
    """Masks the word "secret" in text files."""

    def process(self, storage: Any, name: str, file: File) -> Any:
        if not name.endswith(".txt"):
            return None
        return file.read().replace(b"secret", b"******")


class Stamp(Preprocess):
    """Appends a line to text files (runs after Redact: order matters)."""

    def process(self, storage: Any, name: str, file: File) -> Any:
        if not name.endswith(".txt"):
            return None
        return file.read() + b"\nstamped: secret-free"


class Scanner(Preprocess):
    """Refuses files with the EICAR test signature, as a virus scanner would."""

    def process(self, storage: Any, name: str, file: File) -> Any:
        if b"EICAR-STANDARD-ANTIVIRUS-TEST-FILE" in file.read():
            raise Rejected("infected: EICAR test signature")
        return None


class FlakyOnce(Preprocess):
    """Fails the first time it sees a file under flaky/ (a scanner that
    times out), then passes it unchanged."""

    seen: set[str] = set()

    def process(self, storage: Any, name: str, file: File) -> Any:
        if name.startswith("flaky/") and name not in self.seen:
            self.seen.add(name)
            raise OSError("scanner timed out")
        return None


class CheckedByReceiver(Hook):
    """A plain receiver of transfer_started that changes the file with
    replace_local() (for code that is not a Preprocess)."""

    def connect(self, storage: Any) -> None:
        signals.transfer_started.connect(self.check, sender=storage)

    def check(self, storage: Any, *, name: str, **kwargs: Any) -> None:
        if name.startswith("receiver/"):
            with storage.open_local(name) as fh:
                data = fh.read()
            storage.replace_local(name, data + b" (checked)")


strip_metadata = StripMetadata()
thumbnails = Thumbnails({"small": (64, 64)})
