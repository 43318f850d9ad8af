"""Dunning and involuntary-churn recovery service."""
