"""Requests the policy store refuses, each carrying the HTTP status the API answers.

Why statuses on the exceptions: the API and the CLI call the same store functions, so the
store says what kind of refusal it is and each front end only translates it.
"""

from __future__ import annotations


class PolicyStoreError(Exception):
    """A request the store refuses; ``status`` is the HTTP status the API answers."""

    status = 400


class PolicyNotFound(PolicyStoreError):
    status = 404


class PolicyConflict(PolicyStoreError):
    status = 409


class InvalidRequest(PolicyStoreError):
    status = 422
