"""Who is acting: an API key on the HTTP side, the OS user on the command line."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass

from dunning.admin.models import Role

SYSTEM = "system"
"""Actor of changes the service makes by itself (e.g. installing the default policy)."""


@dataclass(frozen=True)
class Actor:
    """The authenticated caller of an admin endpoint; ``name`` goes into the audit log."""

    key_id: int
    name: str
    role: Role


def cli_actor() -> str:
    """``cli:<os user>``: the audit name of whoever runs a ``dunning`` command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        user = f"uid{os.getuid()}"
    return f"cli:{user}"


def actor_name(actor: Actor | str) -> str:
    """The audit-log spelling of an actor."""
    return actor.name if isinstance(actor, Actor) else actor
