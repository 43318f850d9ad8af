"""One typed settings object, read from ``DUNNING_*`` environment variables once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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
    demo: bool = True
    sweep_interval_seconds: float = Field(default=5.0, gt=0)
    event_grace_seconds: int = Field(default=60, ge=1)
    reconcile_interval_seconds: int = Field(default=300, ge=10)
    max_webhook_bytes: int = Field(default=1024 * 1024, ge=1024)
    ingest_batch_max: int = Field(default=256, ge=1)

    @field_validator("stripe_webhook_secrets", mode="before")
    @classmethod
    def _split_secrets(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
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

    @property
    def public_base(self) -> str:
        """Base of links in emails; the local web address when none is configured."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


def load_settings() -> Settings:
    """Read settings, turning validation errors into one readable message."""
    try:
        return Settings()
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
