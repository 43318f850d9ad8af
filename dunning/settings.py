"""One typed settings object, read from ``DUNNING_*`` environment variables once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from dunning.brand import Brand


class SettingsError(RuntimeError):
    """Raised at start-up with every missing or invalid setting named."""


class Settings(BaseSettings):
    """Service configuration; every field maps to ``DUNNING_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="DUNNING_", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_tolerance_seconds: int = Field(default=300, ge=1)
    public_url: str | None = None
    data_dir: Path = Path(".dunning")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    web_concurrency: int = Field(default=1, ge=1)
    worker_concurrency: int = Field(default=2, ge=1)
    # Workers yield the CPU to the web process: on a shared host a webhook is answered
    # promptly during a burst while its events wait a little longer (bench/ingest.py).
    worker_nice: int = Field(default=10, ge=0, le=19)
    demo: bool = True
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    event_grace_seconds: int = Field(default=60, ge=1)
    reconcile_interval_seconds: int = Field(default=300, ge=10)
    max_webhook_bytes: int = Field(default=1024 * 1024, ge=1024)
    ingest_batch_max: int = Field(default=256, ge=1)
    # Email (dunning/notify): how to send, how to brand, when customers may be mailed.
    email_backend: Literal["smtp", "http"] = "smtp"
    email_from: str | None = None  # default: "<brand name> <support email>"
    smtp_host: str | None = None  # unset: the demo's local sink (dunning run), else not sent
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = Field(default=15.0, gt=0)
    smtp_sink_port: int = Field(default=8025, ge=1, le=65535)
    email_sink: bool = False  # set by `dunning run`'s demo: its sink runs, /outbox shows it
    email_http_url: str | None = None
    email_http_token: SecretStr | None = None
    brand_name: str = "Acme Cloud"
    brand_logo_url: str | None = None
    support_email: str = "support@example.com"
    brand_color: str = "#635bff"
    email_hours_start: int = Field(default=8, ge=0, le=23)
    email_hours_end: int = Field(default=20, ge=1, le=24)
    email_max_tries: int = Field(default=8, ge=1, le=30)
    renewal_reminders: dict[str, list[int]] = Field(default_factory=lambda: {"year": [7, 3, 2]})
    card_expiring_days: Annotated[list[int], NoDecode] = Field(default_factory=lambda: [30, 7])
    email_scan_interval_seconds: int = Field(default=900, ge=10)
    # SMS (dunning/notify/sms): Twilio's Messages API. Unset: SMS steps are recorded
    # skipped (the demo's outbox catches them instead when its sink runs).
    sms_account_sid: str | None = None
    sms_auth_token: SecretStr | None = None
    sms_from: str | None = None  # a Twilio number (E.164) or a Messaging Service sid (MG...)
    sms_base_url: str = "https://api.twilio.com"
    # Self-serve card-update links (dunning/links). The secret must be set with a live key.
    link_secret: SecretStr | None = Field(default=None, validate_default=True)
    link_ttl_days: int = Field(default=14, ge=1, le=365)
    link_rate_limit: int = Field(default=30, ge=1)
    link_rate_window_seconds: int = Field(default=60, ge=1)
    update_mode: Literal["page", "portal"] = "page"
    stripe_publishable_key: str | None = Field(default=None, validate_default=True)
    stripe_js_url: str | None = None
    # Alerts for billing ops (dunning/alerts): where they go and when they fire.
    alert_emails: Annotated[list[str], NoDecode] = Field(default_factory=list)
    alert_webhook_url: str | None = None  # JSON POST; a Slack incoming webhook works
    alert_check_interval_seconds: int = Field(default=300, ge=10)
    alert_failure_window_hours: int = Field(default=6, ge=1, le=168)
    alert_failure_rate_factor: float = Field(default=2.0, gt=1)
    alert_failure_min_renewals: int = Field(default=20, ge=1)
    alert_backlog_minutes: int = Field(default=10, ge=1)
    alert_failed_window_hours: int = Field(default=24, ge=1, le=24 * 30)

    @field_validator("stripe_webhook_secrets", "alert_emails", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return value or None

    @field_validator("link_secret")
    @classmethod
    def _link_secret_with_live_key(cls, value: SecretStr | None, info: ValidationInfo) -> object:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        if value is None and str(info.data.get("stripe_api_key") or "").startswith("sk_live_"):
            raise ValueError("required when DUNNING_STRIPE_API_KEY is a live key")
        return value

    @field_validator("stripe_publishable_key")
    @classmethod
    def _publishable_key_fits(cls, value: str | None, info: ValidationInfo) -> str | None:
        live = str(info.data.get("stripe_api_key") or "").startswith("sk_live_")
        if value is not None and not value.startswith("pk_"):
            raise ValueError("must be a publishable key (pk_...)")
        if value is None and live and info.data.get("update_mode") == "page":
            raise ValueError("required for the card-update page with a live key")
        if value is not None and live and not value.startswith("pk_live_"):
            raise ValueError("a live secret key needs a live publishable key (pk_live_...)")
        return value

    @field_validator("card_expiring_days", mode="before")
    @classmethod
    def _split_days(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.split(",") if part.strip()]
        return value

    @field_validator("card_expiring_days", "renewal_reminders")
    @classmethod
    def _days_ahead(cls, value: dict[str, list[int]] | list[int]) -> object:
        lists = list(value.values()) if isinstance(value, dict) else [value]
        if any(not 1 <= day <= 366 for days in lists for day in days):
            raise ValueError("days ahead must be between 1 and 366")
        if isinstance(value, dict) and set(value) - {"day", "week", "month", "year"}:
            raise ValueError("keys must be plan intervals: day, week, month, year")
        return value

    @field_validator("email_hours_end")
    @classmethod
    def _hours_window(cls, value: int, info: ValidationInfo) -> int:
        if value <= int(info.data.get("email_hours_start", 0)):
            raise ValueError("must be after DUNNING_EMAIL_HOURS_START")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(
            ("postgresql://", "postgres://", "postgresql+psycopg://")
        ):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_only(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        return value

    def branding(self) -> Brand:
        """The brand every email and page shows (checked when the settings load)."""
        return Brand(
            company_name=self.brand_name,
            support_email=self.support_email,
            logo_url=self.brand_logo_url,
            accent_color=self.brand_color,
        )

    @model_validator(mode="after")
    def _brand_is_valid(self) -> Settings:
        try:
            self.branding()
        except ValueError as exc:
            raise ValueError(f"DUNNING_BRAND_* / DUNNING_SUPPORT_EMAIL: {exc}") from None
        return self

    @property
    def public_base(self) -> str:
        """Base of links in emails; the local web address when none is configured."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


# Written by ``dunning run`` in the data folder while it runs: the demo sandbox's and
# mail sink's settings, so a command typed in another terminal (``dunning cases
# resume 3``) sees the same service as the processes it started.
RUN_ENV_FILE = "run.env"


def load_settings() -> Settings:
    """Read settings, turning validation errors into one readable message.

    Process environment first, then ``<data dir>/run.env`` when ``dunning run`` is up.
    """
    try:
        settings = Settings()
        shared = Path(settings.data_dir) / RUN_ENV_FILE
        if shared.is_file():
            settings = Settings(_env_file=shared)  # type: ignore[call-arg]
        return settings
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = "DUNNING_" + "_".join(str(p) for p in err["loc"]).upper()
            lines.append(f"  {name}: {err['msg']}")
        raise SettingsError("invalid settings:\n" + "\n".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, loaded once."""
    return load_settings()
