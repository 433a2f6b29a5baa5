"""Process settings, read once from ``LLMPLANE_*`` environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where state lives and how the gateway behaves; validated once at start."""

    model_config = SettingsConfigDict(env_prefix="LLMPLANE_", extra="ignore", validate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    data_dir: Path = Path(".llmplane")
    config: Path | None = None
    database_url: str | None = None
    admin_key: SecretStr | None = None
    max_request_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    ledger_queue_size: int = Field(default=50_000, ge=100)
    ledger_batch_size: int = Field(default=500, ge=1)
    ledger_flush_interval_s: float = Field(default=0.2, gt=0)
    key_refresh_interval_s: float = Field(default=0.5, gt=0)
    graceful_shutdown_s: float = Field(default=30.0, ge=0)
    log_level: str = "info"
    # json: every log line a JSON object; text: "time LEVEL logger: message" lines.
    log_format: Literal["json", "text"] = "json"
    # One JSON line per finished request on the llmplane.requests logger (at INFO).
    request_log: bool = True
    # Stored request logs (the teams' log_bodies policies; false: off whatever they say):
    # rows waiting beyond the queue size are dropped and counted; rows past their
    # retention are deleted every purge interval.
    stored_logs: bool = True
    request_logs_queue_size: int = Field(default=10_000, ge=10)
    request_logs_purge_interval_s: float = Field(default=300.0, gt=0)
    redis_url: str | None = None
    redis_failure_mode: Literal["closed", "open"] = "closed"
    reservation_ttl_s: float = Field(default=900.0, gt=0)
    budget_webhook_url: str | None = None
    budget_alert_interval_s: float = Field(default=2.0, gt=0)
    # How long a replica serves a registered prompt's label from memory after it moved on
    # another replica (moves made through this replica apply at once).
    prompt_cache_ttl_s: float = Field(default=10.0, gt=0)
    # Traces: on only when an OTLP endpoint is set (for OTLP/HTTP its base URL, e.g.
    # http://127.0.0.1:4318, or its full /v1/traces URL); the standard OTEL_* names work too.
    otel_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("LLMPLANE_OTEL_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    )
    # How spans travel: OTLP/HTTP with protobuf bodies, or OTLP/gRPC (endpoint
    # http://127.0.0.1:4317; needs opentelemetry-exporter-otlp-proto-grpc, in llmplane[otel]).
    otel_protocol: Literal["http/protobuf", "grpc"] = Field(
        default="http/protobuf",
        validation_alias=AliasChoices(
            "LLMPLANE_OTEL_PROTOCOL",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
        ),
    )
    otel_service_name: str = Field(
        default="llmplane",
        validation_alias=AliasChoices("LLMPLANE_OTEL_SERVICE_NAME", "OTEL_SERVICE_NAME"),
    )
    otel_queue_size: int = Field(default=8192, ge=16)
    # Prompt and completion content in spans where a team's request-log policy lets bodies
    # out (full, or redacted); false: never, whatever the teams' policies say.
    otel_content: bool = True
    metrics: bool = True  # Prometheus metrics at /metrics (admin key)
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # also unauthenticated here

    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, else SQLite under the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'llmplane.db').resolve()}"
