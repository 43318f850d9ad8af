"""What the policy store writes in the audit log: the whole set of its actions."""

from __future__ import annotations

from enum import StrEnum

TARGET = "retry_policy"
"""``audit_log.target_type`` of every policy change; the target id is the version's id."""


class PolicyAudit(StrEnum):
    APPLY = "policy.apply"
    ACTIVATE = "policy.activate"
    SPLIT = "policy.split"
    SPLIT_CLEAR = "policy.split_clear"
