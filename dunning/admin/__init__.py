"""Admin access: API keys with roles, the FastAPI guard that checks them, the audit log.

Import from the modules (``actors``, ``audit``, ``keys``, ``auth``): this package file
stays empty so the migrations and workers load the tables without loading FastAPI.
"""
