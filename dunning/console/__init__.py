"""The billing-ops console at ``/console``: cases, policies, templates and alerts in the
browser, rendered on the server, behind a session cookie (docs/architecture.md)."""
