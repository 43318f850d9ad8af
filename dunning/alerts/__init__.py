"""Alerts for billing ops: checks run by beat, each condition told once until it clears."""
