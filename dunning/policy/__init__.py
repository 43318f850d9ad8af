"""Pure retry policy: decline classes, policy models, card-network rules and the engine.

No I/O here (docs/architecture.md): callers pass history and ``now`` in.
"""

from dunning.policy.declines import DeclineClass, classify
from dunning.policy.engine import decide
from dunning.policy.models import EndAction, Policy, PolicyError, load_policy, parse_policy
from dunning.policy.preview import simulate
from dunning.policy.records import Attempt, Decision, DecisionKind

__all__ = [
    "Attempt",
    "Decision",
    "DecisionKind",
    "DeclineClass",
    "EndAction",
    "Policy",
    "PolicyError",
    "classify",
    "decide",
    "load_policy",
    "parse_policy",
    "simulate",
]
