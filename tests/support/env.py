"""Settings every test session shares; no project import, so the root conftest stays light."""

from __future__ import annotations

WEBHOOK_SECRET = "whsec_test_current"
OLD_WEBHOOK_SECRET = "whsec_test_previous"  # still accepted: a rotation in progress
