"""Scheduled actions: dates days away live in Postgres, and a sweeper sends what is due."""
