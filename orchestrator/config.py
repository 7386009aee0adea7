"""Service configuration: rewind.toml plus REWIND_* environment variables (pydantic-settings).

Precedence, highest first: environment (``REWIND_<SECTION>__<KEY>``, e.g. ``REWIND_GPU__DELAY_S``;
plus the conventional ``DATABASE_URL``), then the TOML file, then the defaults below. Unknown keys
are errors so that a typo in an operator's file is reported, not ignored. Every key is documented
with its unit in ``rewind.example.toml``.
"""

from __future__ import annotations

import os
import uuid
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

_TOML_PATH: ContextVar[Path | None] = ContextVar("rewind_toml_path", default=None)

DEFAULT_CONFIG_FILE = Path("rewind.toml")


class ConfigError(RuntimeError):
    """The configuration selects a backend whose credentials or settings are missing.

    Raised by ``orchestrator.backends.check_backends`` (and so by ``Service.start``) before
    anything is opened; the message is one line naming what is missing, never a secret.
    """


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    """``[server]``: where the HTTP API listens and where local state lives."""

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    data_dir: Path = Path(".rewind")


class DatabaseConfig(_Section):
    """``[database]``: PostgreSQL. ``url`` None starts an embedded server under data_dir/pg."""

    url: str | None = None
    pool_min: int = Field(1, ge=1)
    pool_max: int = Field(10, ge=1)
    connect_timeout_s: float = Field(5.0, gt=0.0)
    probe_interval_s: float = Field(1.0, gt=0.0)
    probe_timeout_s: float = Field(2.0, gt=0.0)
    retry_initial_s: float = Field(0.5, gt=0.0)
    retry_max_s: float = Field(30.0, gt=0.0)


class HttpConfig(_Section):
    """``[http]``: what the HTTP server accepts (hardening against hostile or broken clients).

    Bodies are counted as they arrive (chunked or not) and refused with 413 past
    ``max_body_bytes`` (None: the largest photo in base64, ``[limits] max_image_bytes`` x 4/3,
    plus 64 KiB of JSON). Headers must arrive within ``header_timeout_s`` and be at most
    ``max_header_bytes``; a body must arrive within ``body_timeout_s``. Beyond
    ``max_connections`` open connections a new one is answered 503 and closed. A stop waits at
    most ``graceful_shutdown_s`` for open requests and streams, then cancels them. ``allowed_hosts``
    are the Host header values served (Starlette's TrustedHostMiddleware patterns, e.g.
    ``*.example.com``; against DNS rebinding); state-changing requests need a JSON content type
    or an Origin in ``allowed_origins`` (or the service's own origin), so a cross-site form post
    is refused.
    """

    max_body_bytes: int | None = Field(None, ge=1024)
    header_timeout_s: float = Field(10.0, gt=0.0)
    body_timeout_s: float = Field(60.0, gt=0.0)
    keep_alive_s: int = Field(5, ge=1)
    max_header_bytes: int = Field(16 * 1024, ge=1024)
    max_connections: int = Field(1000, ge=1)
    graceful_shutdown_s: int = Field(10, ge=1)
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["localhost", "*.localhost", "127.0.0.1", "::1"]
    )
    allowed_origins: list[str] = Field(default_factory=list)


class StorageConfig(_Section):
    """``[storage]``: blob buckets (originals, videos, frames, audio).

    ``local``: folders under ``root`` (default data_dir/blobs). ``supabase``: Supabase Storage,
    with SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY from the environment; media endpoints then
    redirect (307) to signed URLs valid ``signed_url_ttl_s`` seconds.
    """

    backend: Literal["local", "supabase"] = "local"
    root: Path | None = None
    timeout_s: float = Field(30.0, gt=0.0)
    signed_url_ttl_s: int = Field(3600, ge=1, le=7 * 24 * 3600)


class LimitsConfig(_Section):
    """``[limits]``: input limits. Bytes are decoded image bytes; pixels are width x height."""

    max_image_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(40_000_000, ge=256)
    max_prompt_chars: int = Field(2000, ge=0)


class GenerationConfig(_Section):
    """``[generation]``: the generation profile (everything that changes the pixels).

    Defaults from the seed: 125 frames at 24 fps (~5.2 s), 480p (854 x 480), 30 inference steps,
    root pose ``w-31``. When ``root_pose`` is not given it follows ``frames``: ``w-<(frames-1)/4>``
    (``w-8`` for 33 frames), so changing the chunk length alone stays a valid profile.
    """

    frames: int = Field(125, ge=5)
    width: int = Field(854, ge=16)
    height: int = Field(480, ge=16)
    fps: int = Field(24, ge=1, le=120)
    steps: int = Field(30, ge=1)
    seed: int = 0
    model: str = "local-cpu"
    root_pose: str = "w-31"

    @field_validator("frames")
    @classmethod
    def _frames_fit_latents(cls, v: int) -> int:
        # HY-WorldPlay: one latent = 4 frames after the first, so frames = 4k + 1.
        if (v - 1) % 4:
            raise ValueError("frames must be 4k+1 (HY-WorldPlay: 1 latent = 4 video frames)")
        return v

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("width and height must be even (H.264 yuv420p)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _root_pose_follows_frames(cls, data: object) -> object:
        # A pose's steps must sum to (frames-1)/4; a default of w-31 fits 125 frames only.
        if isinstance(data, dict) and "root_pose" not in data and "frames" in data:
            frames = data["frames"]
            if isinstance(frames, int | str) and str(frames).isdigit() and int(frames) > 1:
                return {**data, "root_pose": f"w-{(int(frames) - 1) // 4}"}
        return data


class GpuConfig(_Section):
    """``[gpu]``: the GPU pool. Seconds are wall seconds; prices are USD per GPU-second.

    ``local``: the CPU renderer. ``modal``: the deployed ``modal_app``/``modal_cls``
    (gpu/modal_app.py), with a Modal token from MODAL_TOKEN_ID / MODAL_TOKEN_SECRET or
    ~/.modal.toml; the ``modal_*``, ``poll_s``, ``submit_*`` and ``max_wait_s`` keys apply to it
    only, ``delay_s`` and ``workers`` to the local renderer only. ``warm_pool`` (Modal only):
    every ``warm_interval_s`` set the deployment's ``min_containers`` from the viewers' predicted
    demand (``orchestrator.warm_control``); ``scaledown_window_s`` must equal the deployment's
    REWIND_MODAL_SCALEDOWN_WINDOW_S (how long Modal keeps an idle container).
    """

    backend: Literal["local", "modal"] = "local"
    max_containers: int = Field(2, ge=1, le=1024)
    delay_s: float = Field(0.0, ge=0.0)
    workers: int | None = Field(None, ge=1)
    expected_gpu_s: float | None = Field(None, gt=0.0)
    cold_start_s: float = Field(0.0, ge=0.0)
    price_per_gpu_s: float = Field(0.000694, ge=0.0)
    demand_retries: int = Field(2, ge=0, le=10)
    modal_app: str = Field("rewind-worldplay", min_length=1)
    modal_cls: str = Field("WorldPlay", min_length=1)
    modal_environment: str | None = None
    poll_s: float = Field(30.0, gt=0.0)
    submit_timeout_s: float = Field(60.0, gt=0.0)
    submit_attempts: int = Field(3, ge=1, le=10)
    max_wait_s: float = Field(3600.0, gt=0.0)
    warm_pool: bool = True
    warm_interval_s: float = Field(30.0, gt=0.0)
    scaledown_window_s: float = Field(300.0, gt=0.0)


class SpeculationConfig(_Section):
    """``[speculation]``: the policy and the budget it runs under (enforced by the core)."""

    policy: str = "lookahead"
    policy_params: dict[str, object] = Field(default_factory=dict)
    speculative_share: float = Field(0.75, ge=0.0, le=1.0)
    rate_gpu_s_per_s: float = Field(2.0, ge=0.0)
    burst_gpu_s: float = Field(1800.0, ge=0.0)
    max_depth: int = Field(2, ge=1, le=8)
    per_session_inflight: int = Field(4, ge=0)
    min_probability: float = Field(0.05, ge=0.0, le=1.0)
    idle_timeout_s: float = Field(120.0, gt=0.0)
    min_benefit_per_gpu_s: float = Field(0.15, ge=0.0)
    gone_after_gaps: float = Field(3.0, ge=0.0)
    think_s: float = Field(2.0, ge=0.0)


class ArmConfig(_Section):
    """One ``[[experiments.arms]]`` entry: name, policy, weight (relative share), params."""

    name: str = Field(min_length=1, max_length=64)
    policy: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0.0)
    params: dict[str, object] = Field(default_factory=dict)


class ExperimentsConfig(_Section):
    """``[experiments]``: A/B arms. No arms: every session runs ``[speculation] policy``."""

    name: str = Field("default", min_length=1)
    arms: list[ArmConfig] = Field(default_factory=list)

    @field_validator("arms")
    @classmethod
    def _unique_names(cls, v: list[ArmConfig]) -> list[ArmConfig]:
        names = [a.name for a in v]
        if len(names) != len(set(names)):
            raise ValueError(f"arm names must be unique (got {names})")
        return v


class SceneConfig(_Section):
    """``[scene]``: scene analysis backend.

    ``offline``: deterministic image statistics. ``claude``: Claude with ANTHROPIC_API_KEY from
    the environment (no key: the service starts, ``scene`` is null and /api/health says why).
    Prices are USD per million tokens (Anthropic's list price of claude-haiku-4-5).
    """

    backend: Literal["offline", "claude"] = "offline"
    model: str = Field("claude-haiku-4-5", min_length=1)
    timeout_s: float = Field(60.0, gt=0.0)
    max_retries: int = Field(2, ge=0, le=10)
    max_tokens: int = Field(1024, ge=64)
    price_per_mtok_input: float = Field(1.0, ge=0.0)
    price_per_mtok_output: float = Field(5.0, ge=0.0)
    base_url: str | None = None


class SoundscapeConfig(_Section):
    """``[soundscape]``: soundscape backend.

    ``none``: no audio. ``elevenlabs``: ElevenLabs sound effects with ELEVENLABS_API_KEY from the
    environment (no key: the service starts, audio is null and /api/health says why).
    """

    backend: Literal["none", "elevenlabs"] = "none"
    duration_s: float = Field(20.0, ge=0.5, le=30.0)
    prompt_influence: float = Field(0.3, ge=0.0, le=1.0)
    loop: bool = True
    timeout_s: float = Field(120.0, gt=0.0)
    price_per_second: float = Field(0.006, ge=0.0)
    price_per_1k_chars: float = Field(0.0, ge=0.0)
    base_url: str | None = None


LOCAL_USER_ID = uuid.UUID("00000000-0000-4000-8000-000000000001")
"""The one local user of ``[auth] mode = "none"`` (a fixed, valid v4-shaped UUID)."""


class AuthConfig(_Section):
    """``[auth]``: who may call the API, per-user limits, CORS and media URL signing.

    ``none`` (the embedded default): no token is read; every request is the one local user,
    who is also the operator, and no per-user limit applies. ``supabase``: every ``/api``
    request (health excepted) carries ``Authorization: Bearer <Supabase access token>``,
    verified against ``jwks_url`` (RS256 / ES256 keys, cached ``jwks_cache_s`` seconds, re-read
    on an unknown ``kid`` at most every ``jwks_min_refresh_s`` seconds) and/or the legacy HS256
    ``jwt_secret``; ``aud`` must be ``audience``, ``iss`` must be ``issuer``, ``exp`` / ``nbf``
    hold within ``leeway_s`` (at most 30 s of clock skew). Limits: ``requests_per_minute``
    (token bucket, 0 = off) and ``gpu_seconds_per_day`` (UTC day, 0 = off); speculation for a
    user stops once their usage passes ``(1 - speculation_reserve) x gpu_seconds_per_day``.
    """

    mode: Literal["none", "supabase"] = "none"
    jwks_url: str | None = None
    jwt_secret: SecretStr | None = None
    audience: str = Field("authenticated", min_length=1)
    issuer: str | None = None
    leeway_s: float = Field(10.0, ge=0.0, le=30.0)
    jwks_cache_s: float = Field(300.0, gt=0.0)
    jwks_min_refresh_s: float = Field(10.0, ge=0.0)
    jwks_timeout_s: float = Field(10.0, gt=0.0)
    operator_token: SecretStr | None = None
    local_user_id: uuid.UUID = LOCAL_USER_ID
    requests_per_minute: int = Field(120, ge=0)
    gpu_seconds_per_day: float = Field(3600.0, ge=0.0)
    speculation_reserve: float = Field(0.2, ge=0.0, le=1.0)
    usage_refresh_s: float = Field(5.0, gt=0.0)
    media_url_ttl_s: int = Field(300, ge=10, le=24 * 3600)
    media_url_secret: SecretStr | None = None
    cors_origins: list[str] = Field(default_factory=list)

    @field_validator("cors_origins")
    @classmethod
    def _explicit_origins(cls, v: list[str]) -> list[str]:
        # Credentials (the Authorization header) are allowed, so a wildcard would let any site
        # act as the user (the Fetch standard refuses "*" with credentials for the same reason).
        for origin in v:
            if "*" in origin or not origin.startswith(("http://", "https://")):
                raise ValueError(
                    f"cors_origins entries are explicit origins such as "
                    f'"https://app.example.com" (no wildcard); got {origin!r}'
                )
        return [o.rstrip("/") for o in v]

    @model_validator(mode="after")
    def _supabase_needs_keys(self) -> AuthConfig:
        if self.mode == "supabase":
            if self.jwks_url is None and self.jwt_secret is None:
                raise ValueError('auth.mode = "supabase" needs jwks_url or jwt_secret (or both)')
            if self.issuer is None:
                raise ValueError(
                    'auth.mode = "supabase" needs issuer, e.g. "https://<ref>.supabase.co/auth/v1"'
                )
        return self


class ClusterConfig(_Section):
    """``[cluster]``: scale-out (issue 16; docs/deploy.md). ``role`` is what ``rewind serve``
    runs: ``all`` (API + scheduler in one process, the default), ``api`` (a replica answering hits
    from its own view and handing misses to the scheduler through the database) or
    ``scheduler`` (a standby until it holds the leader lock, then API + scheduler). Roles other
    than ``all`` need ``DATABASE_URL`` on a session-mode connection (LISTEN/NOTIFY and the
    advisory lock). Times in seconds."""

    role: Literal["all", "api", "scheduler"] = "all"
    name: str | None = None  # this process in chunk_demands.replica / taken_by (default host:pid)
    leader_poll_s: float = Field(0.5, gt=0.0)  # a standby's lock tries; bounds failover time
    poll_s: float = Field(1.0, gt=0.0)  # catch-up queries (demands, answers, ready chunks)
    wait_timeout_s: float = Field(900.0, gt=0.0)  # longest a replica holds a waiting request
    leaderless_timeout_s: float = Field(30.0, gt=0.0)  # a waiting request answers 503 after this
    answered_keep_s: float = Field(600.0, gt=0.0)  # answered chunk_demands rows kept this long


class LogConfig(_Section):
    """``[log]``: structlog output."""

    level: Literal["debug", "info", "warning", "error"] = "info"
    json_output: bool = True


class Settings(BaseSettings):
    """The whole configuration. Build it with ``load_settings``."""

    model_config = SettingsConfigDict(
        env_prefix="REWIND_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerConfig = ServerConfig()
    http: HttpConfig = HttpConfig()
    database: DatabaseConfig = DatabaseConfig()
    storage: StorageConfig = StorageConfig()
    limits: LimitsConfig = LimitsConfig()
    generation: GenerationConfig = GenerationConfig()
    gpu: GpuConfig = GpuConfig()
    speculation: SpeculationConfig = SpeculationConfig()
    experiments: ExperimentsConfig = ExperimentsConfig()
    scene: SceneConfig = SceneConfig()
    soundscape: SoundscapeConfig = SoundscapeConfig()
    auth: AuthConfig = AuthConfig()
    cluster: ClusterConfig = ClusterConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.database.pool_min > self.database.pool_max:
            raise ValueError("database.pool_min must be <= database.pool_max")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _TOML_PATH.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def blob_root(self) -> Path:
        """Root folder of the local blob buckets."""
        return self.storage.root or self.server.data_dir / "blobs"


def load_settings(
    path: Path | None = None, *, use_file: bool = True, **overrides: object
) -> Settings:
    """Load settings from ``path`` (default: $REWIND_CONFIG or ./rewind.toml if it exists).

    ``use_file=False`` reads no file at all (defaults, environment and overrides only).

    ``overrides`` are section dicts that win over everything (used by tests and the CLI).

    Raises:
        FileNotFoundError: ``path`` was given explicitly and does not exist.
        pydantic.ValidationError: a key is unknown or a value breaks its rule.
    """
    if not use_file:
        path = None
    elif path is None:
        env_path = os.environ.get("REWIND_CONFIG")
        path = Path(env_path) if env_path else DEFAULT_CONFIG_FILE
        if not path.exists():
            if env_path:
                raise FileNotFoundError(f"REWIND_CONFIG names {path}, which does not exist")
            path = None
    elif not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    token = _TOML_PATH.set(path)
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    finally:
        _TOML_PATH.reset(token)
    db_url = os.environ.get("DATABASE_URL")
    if db_url and settings.database.url is None:
        settings = settings.model_copy(
            update={"database": settings.database.model_copy(update={"url": db_url})}
        )
    return settings
