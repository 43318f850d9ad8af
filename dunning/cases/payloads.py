"""The payload and dedupe key of each charge action a case plans.

One builder per key, so the planner, ops and the handlers never spell a key twice;
the key makes each retry (and the end of the case) happen once per case.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ChargePayload:
    """What a ``retry_charge`` or ``end_action`` action carries."""

    attempt_number: int
    end_action: str
    retry_now: bool = False  # ops asked for it: only the network rules may move it
    payment_method: str | None = None  # a backup card (cascade); None: the charged card
    pause_behavior: str = "void"  # pause_collection.behavior for ``pause_subscription``

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, payload: dict[str, Any]) -> ChargePayload:
        return cls(
            attempt_number=int(payload.get("attempt_number", 0)),
            end_action=str(payload.get("end_action", "leave_past_due")),
            retry_now=bool(payload.get("retry_now", False)),
            payment_method=payload.get("payment_method") or None,
            pause_behavior=str(payload.get("pause_behavior") or "void"),
        )


def retry_key(case_id: int, attempt_number: int) -> str:
    return f"case:{case_id}:retry:{attempt_number}"


def end_key(case_id: int) -> str:
    return f"case:{case_id}:end"


def resume_key(case_id: int) -> str:
    """Once per case: a paused subscription is resumed after its invoice is paid."""
    return f"case:{case_id}:resume"


def end_idempotency_key(case_id: int) -> str:
    """The processor-side key of the case's end action."""
    return f"dunning-case-{case_id}-end"


def resume_idempotency_key(case_id: int) -> str:
    """The processor-side key of resuming the case's paused subscription."""
    return f"dunning-case-{case_id}-resume"


def write_off_key(case_id: int) -> str:
    return f"case:{case_id}:write-off"


def idempotency_key(case_id: int, attempt_number: int) -> str:
    """The processor-side key of our charge for this case and attempt."""
    return f"dunning-case-{case_id}-attempt-{attempt_number}"
