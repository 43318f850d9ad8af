"""A fixed-window rate limit in the service's Redis, shared by every web process.

The pay page needs no login, creates a SetupIntent per view and charges on each card
save, so it is throttled per client IP and per token. When Redis is unreachable the
limit lets requests through (and logs): a customer paying matters more than the cap,
and Postgres, not Redis, holds everything durable (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable
from functools import cache

import redis

log = logging.getLogger(__name__)

_PREFIX = "dunning:ratelimit:"


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def token_key(token: str) -> str:
    """A short digest of a token, so the bearer credential is never a Redis key."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:32]


def allow(
    redis_url: str, keys: Iterable[str], limit: int, window: int, now: float | None = None
) -> bool:
    """Count one hit on every key in the current window; False if any is over ``limit``."""
    slot = int((time.time() if now is None else now) // window)
    names = [f"{_PREFIX}{key}:{slot}" for key in keys]
    try:
        pipe = _client(redis_url).pipeline(transaction=False)
        for name in names:
            pipe.incr(name)
            pipe.expire(name, window + 1)
        counts = pipe.execute()[::2]
    except (redis.RedisError, OSError) as exc:
        log.warning("rate limit not enforced, Redis unavailable: %s", exc)
        return True
    return all(int(count) <= limit for count in counts)


def reset(redis_url: str) -> None:
    """Forget every window (tests, and ops after a false alarm)."""
    client = _client(redis_url)
    for name in client.scan_iter(f"{_PREFIX}*"):
        client.delete(name)
