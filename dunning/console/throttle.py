"""Failed logins per client address, counted in Redis and shared by every web process.

Why: an API key is the whole credential, so guessing must be slow. After ``LIMIT``
failed logins from one address within ``WINDOW`` seconds of the first, that address
is refused (429) until the window ends, without its key being checked. When Redis is
unreachable the login still works (and logs): ops locked out of the console during an
incident would be worse, and the keys are far too long to guess anyway.
"""

from __future__ import annotations

import logging
from functools import cache

import redis

log = logging.getLogger(__name__)

LIMIT = 5
WINDOW = 60  # seconds
_PREFIX = "dunning:login-failures:"


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def wait_seconds(redis_url: str, address: str) -> int:
    """Seconds this address must wait before trying again; 0 when it may try now."""
    name = _PREFIX + address
    try:
        pipe = _client(redis_url).pipeline(transaction=False)
        pipe.get(name)
        pipe.ttl(name)
        count, ttl = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("login throttle not enforced, Redis unavailable: %s", exc)
        return 0
    if count is None or int(count) < LIMIT:
        return 0
    return max(int(ttl), 1)


def record_failure(redis_url: str, address: str) -> None:
    """Count one failed login from ``address``."""
    name = _PREFIX + address
    try:
        pipe = _client(redis_url).pipeline(transaction=True)
        pipe.set(name, 0, ex=WINDOW, nx=True)  # the window starts with the first failure
        pipe.incr(name)  # keeps the expiry
        pipe.execute()
    except (redis.RedisError, OSError) as exc:
        log.warning("login failure not counted, Redis unavailable: %s", exc)


def reset(redis_url: str) -> None:
    """Forget every count (tests, and ops after locking themselves out)."""
    client = _client(redis_url)
    for name in client.scan_iter(f"{_PREFIX}*"):
        client.delete(name)
