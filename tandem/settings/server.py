"""Settings of the FastAPI server and the episode store."""

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ServerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="Interface the HTTP server listens on.")
    access_log: bool = Field(
        False,
        description="Log every HTTP request (uvicorn's access log, tokens redacted). Off: the "
        "console shows what matters (the login link, errors) instead of static files and polls.",
    )
    port: int = Field(8000, ge=1, le=65535, description="TCP port of the HTTP server.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy database URL; default: SQLite (WAL) in the data directory.",
    )
    bridges: list[str] = Field(
        default_factory=lambda: ["tcp://127.0.0.1:5555"],
        description="ZMQ PUB endpoints of the bridges whose steps, status and frames to record.",
    )
    bridge_cmd_endpoints: list[str] = Field(
        default_factory=lambda: ["tcp://127.0.0.1:5556"],
        description="Command endpoints of the bridges, in the same order as `bridges`.",
    )
    learner_metrics_endpoint: str = Field(
        "tcp://127.0.0.1:5562", description="Learner's ZMQ PUB endpoint for training metrics."
    )

    # --- Episode store and recorder (server/store/, server/recorder.py) ---
    flush_every_s: float = Field(
        1.0, gt=0, le=1.0, description="Recorder writes buffered steps to disk at least this often."
    )
    metrics_interval_s: float = Field(
        1.0, ge=0, description="Metrics history keeps at most one point per metric per interval."
    )
    token_ttl_s: float = Field(
        7 * 24 * 3600.0, gt=0, description="Lifetime of an operator login token in seconds."
    )
    login_token_ttl_s: float = Field(
        900.0, gt=0, description="Lifetime of the one-time login token printed at start-up, s."
    )
    login_attempts_per_user: int = Field(
        5, ge=1, le=1000, description="Logins allowed per user name per login window (429 beyond)."
    )
    login_attempts_per_address: int = Field(
        20,
        ge=1,
        le=10_000,
        description="Logins allowed per client address per login window (429 beyond).",
    )
    login_window_s: float = Field(
        60.0, gt=0, le=86_400, description="Sliding window of the login rate limits, s."
    )
    scripted_operator: bool = Field(
        True,
        description="Provision the account of `tandem demo-operator` at start-up: its name and "
        "password go to <data_dir>/secrets/scripted-operator.json (mode 0600), from which the "
        "operator logs in over HTTP. Turn off where no scripted operator runs.",
    )

    # --- FastAPI app, WebSockets and bridge link (server/app.py, server/bridge_link.py) ---
    web_dir: str = Field(
        "web", description="Directory of the static dashboard, served at / after every route."
    )
    command_timeout_s: float = Field(
        1.0, gt=0, le=30, description="How long to wait for a bridge's reply to a command, s."
    )
    metrics_batch_s: float = Field(
        0.5,
        ge=0.2,
        le=1.0,
        description="Learner metrics are sent to dashboards in batches this often, s.",
    )
    public_url: str | None = Field(
        None, description="Base URL printed in the login link (default http://HOST:PORT)."
    )

    @model_validator(mode="after")
    def _address_limit_covers_user_limit(self) -> Self:
        if self.login_attempts_per_address < self.login_attempts_per_user:
            raise ValueError(
                "server.login_attempts_per_address must be >= login_attempts_per_user "
                "(one address must be able to use one user's attempts)"
            )
        return self
