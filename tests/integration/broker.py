"""The session's keys in Redis (broker queues, cache, events), seen from
the test process."""

from __future__ import annotations

import base64
import json
from typing import Any

import redis

from .config import Deployment


class Broker:
    """The session's Redis keys, seen from the test process."""

    def __init__(self, client: redis.Redis, deployment: Deployment):
        self.client = client
        self.deployment = deployment

    @staticmethod
    def sent() -> None:
        """Wait until this process's publisher thread sent what it was
        handed (``PUBLISH = "background"``)."""
        from storage_hooks.runners.celery import publisher

        assert publisher.drain(30), "the publisher thread did not send its messages in 30 s"

    def queue_key(self, queue: str) -> str:
        return self.deployment.broker_prefix + queue

    def raw_messages(self, queue: str) -> list[bytes]:
        """The messages waiting in ``queue``, oldest first, as stored."""
        self.sent()
        return list(reversed(self.client.lrange(self.queue_key(queue), 0, -1)))

    def messages(self, queue: str) -> list[dict[str, Any]]:
        """The waiting messages, each with its body decoded as ``decoded``."""
        found = []
        for raw in self.raw_messages(queue):
            envelope = json.loads(raw)
            body = envelope["body"]
            if envelope["properties"].get("body_encoding") == "base64":
                body = base64.b64decode(body)
            envelope["decoded"] = json.loads(body)
            found.append(envelope)
        return found

    def drop_queue(self, queue: str) -> int:
        """Delete every waiting message of ``queue`` (a lost message)."""
        self.sent()
        return int(self.client.delete(self.queue_key(queue)))

    def events(self, event: str | None = None, **match: Any) -> list[dict[str, Any]]:
        """Events the workers recorded, oldest first, filtered."""
        raw = self.client.lrange(self.deployment.events_key, 0, -1)
        found = [json.loads(item) for item in raw]
        return [
            e
            for e in found
            if (event is None or e["event"] == event)
            and all(e.get(k) == v for k, v in match.items())
        ]

    def cache_keys(self) -> list[bytes]:
        """The keys of the shared Django cache in Redis."""
        pattern = _glob_escape(self.deployment.cache_prefix) + "*"
        return list(self.client.scan_iter(match=pattern, count=500))

    def delete_prefixed(self, prefix: str) -> int:
        keys = list(self.client.scan_iter(match=_glob_escape(prefix) + "*", count=500))
        if keys:
            self.client.delete(*keys)
        return len(keys)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[]\\" else c for c in text)
