"""Moved to ``tests.support.synthetic``; kept only for ``bench/reports.py``'s import."""

from tests.support.synthetic import seed

__all__ = ["seed"]
