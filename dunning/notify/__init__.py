"""Customer notifications: render, plan (dunning sequences, reminders) and send emails."""

from .render import (
    END_ACTIONS,
    LOCALES,
    PAYMENT_LINK_TEMPLATES,
    TEMPLATE_VARIABLES,
    TEMPLATES,
    Brand,
    EmailTemplateError,
    MissingVariableError,
    RenderedEmail,
    UnknownTemplateError,
    render_email,
    sample_context,
)

__all__ = [
    "END_ACTIONS",
    "LOCALES",
    "PAYMENT_LINK_TEMPLATES",
    "TEMPLATES",
    "TEMPLATE_VARIABLES",
    "Brand",
    "EmailTemplateError",
    "MissingVariableError",
    "RenderedEmail",
    "UnknownTemplateError",
    "render_email",
    "sample_context",
]
