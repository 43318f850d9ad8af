"""Celery app, beat schedule and thin tasks that call into ``dunning``."""
