"""Backends chosen in the configuration, built from Settings (DESIGN.md "Real parts and their
embedded defaults"): ``[gpu] backend`` local | modal, ``[storage] backend`` local | supabase,
``[scene] backend`` offline | claude, ``[soundscape] backend`` none | elevenlabs.

Secrets come from the environment only. A GPU pool or blob store without its credentials stops
the start (``ConfigError``, before the database is opened): nothing could be generated or stored.
Claude or ElevenLabs without a key do not: memories are still created with ``scene`` / audio
null, and /api/health says why. Costs of external calls (Claude tokens, ElevenLabs seconds) are
collected per call through ``metered()`` and written to ``memory_costs`` by
``orchestrator.memories``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import structlog

from gpu.local import LocalGpuPool
from gpu.protocol import GpuPool
from orchestrator.config import ConfigError, Settings
from orchestrator.core.profile import GenerationProfile
from orchestrator.core.variants import check_profile
from orchestrator.scene import OfflineSceneAnalyzer, SceneAnalyzer, SceneInfo
from orchestrator.soundscape import Audio, NoSoundscape, Soundscape
from orchestrator.storage import BlobStore, Bucket, LocalBlobStore

if TYPE_CHECKING:  # imported lazily: anthropic alone takes seconds to import
    from orchestrator.claude_scene import ClaudeSceneAnalyzer
    from orchestrator.elevenlabs_soundscape import ElevenLabsSoundscape

log = structlog.get_logger(__name__)

__all__ = [
    "ExternalCall", "SignedUrls", "build_pool", "build_scene", "build_soundscape", "build_store",
    "check_backends", "metered", "profile_from",
]  # fmt: skip


@runtime_checkable
class SignedUrls(Protocol):
    """A remote blob store that can hand out time-limited download URLs (Supabase Storage)."""

    async def signed_url(self, bucket: Bucket, key: str, expires_s: int) -> str:
        """A URL serving the blob for ``expires_s`` seconds. Raises BlobNotFound."""
        ...


def check_backends(settings: Settings) -> None:
    """Fail fast when the selected GPU pool or blob store has no credentials.

    Reads the environment (MODAL_TOKEN_ID / MODAL_TOKEN_SECRET or ~/.modal.toml; SUPABASE_URL /
    SUPABASE_SERVICE_ROLE_KEY) and never prints a secret. Claude and ElevenLabs are not checked
    here: without a key the service runs and reports them as "not configured".

    Raises:
        ConfigError: one line naming everything missing.
    """
    problems: list[str] = []
    if settings.gpu.backend == "modal":
        from gpu.modal_pool import ModalConfigError, check_credentials

        try:
            check_credentials()
        except ModalConfigError as exc:
            problems.append(f'[gpu] backend = "modal": {exc}')
        try:  # the variant's upstream rules (size, latents) before any GPU is paid for
            check_profile(profile_from(settings))
        except ValueError as exc:
            problems.append(f"[generation]: {exc}")
    if settings.storage.backend == "supabase":
        from orchestrator.supabase_storage import SupabaseConfigError, check_config

        try:
            check_config()
        except SupabaseConfigError as exc:
            problems.append(f'[storage] backend = "supabase": {exc}')
    if problems:
        raise ConfigError("cannot start: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class ExternalCall:
    """One billed call to an external API, as recorded in ``memory_costs``.

    ``quantity`` is in ``units`` (tokens for 'llm', seconds of audio for 'sound'); ``usd`` is
    priced with the configured rates at the time of the call.
    """

    kind: Literal["llm", "sound"]
    backend: str
    model: str | None
    units: Literal["tokens", "seconds"]
    quantity: float
    usd: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    characters: int | None = None


_CALLS: ContextVar[list[ExternalCall] | None] = ContextVar("rewind_external_calls", default=None)


@contextlib.contextmanager
def metered() -> Iterator[list[ExternalCall]]:
    """Collect the billed external calls made in this block (this task's context only).

    Concurrent memories each collect their own calls: the list lives in a ContextVar, and the
    adapters append to it from inside their own awaited call.
    """
    calls: list[ExternalCall] = []
    token = _CALLS.set(calls)
    try:
        yield calls
    finally:
        _CALLS.reset(token)


def _bill(call: ExternalCall) -> None:
    sink = _CALLS.get()
    if sink is not None:
        sink.append(call)


@functools.cache
def metered_claude() -> type[ClaudeSceneAnalyzer]:
    """ClaudeSceneAnalyzer that also bills each answered call to the current ``metered()`` block.

    Tokens are billed even when the answer is then refused (no scene in it): they were paid.
    (A factory so that anthropic is imported only when Claude is selected.)
    """
    from orchestrator.claude_scene import ClaudeSceneAnalyzer

    class MeteredClaudeSceneAnalyzer(ClaudeSceneAnalyzer):
        def _record(self, input_tokens: int, output_tokens: int) -> None:
            super()._record(input_tokens, output_tokens)
            usd = (
                input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
            ) / 1e6
            _bill(
                ExternalCall(
                    kind="llm",
                    backend=self.name,
                    model=self.model,
                    units="tokens",
                    quantity=float(input_tokens + output_tokens),
                    usd=usd,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                )
            )

    return MeteredClaudeSceneAnalyzer


@functools.cache
def metered_elevenlabs() -> Callable[..., ElevenLabsSoundscape]:
    """ElevenLabsSoundscape that bills each generated clip to the current ``metered()`` block.

    Takes ElevenLabsSoundscape's arguments plus ``usd_per_1k_chars`` (USD per 1,000 prompt
    characters, added to the per-second price). (A factory so that elevenlabs is imported only
    when selected.)
    """
    from orchestrator.elevenlabs_soundscape import ElevenLabsSoundscape, sound_prompt

    class MeteredElevenLabsSoundscape(ElevenLabsSoundscape):
        def __init__(
            self, api_key: str | None, *, usd_per_1k_chars: float = 0.0, **kwargs: Any
        ) -> None:
            super().__init__(api_key, **kwargs)
            self.usd_per_1k_chars = usd_per_1k_chars

        async def generate(self, scene: SceneInfo) -> Audio | None:
            audio = await super().generate(scene)
            if audio is not None:
                chars = len(sound_prompt(scene))
                _bill(
                    ExternalCall(
                        kind="sound",
                        backend=self.name,
                        model=None,
                        units="seconds",
                        quantity=audio.duration_s,
                        usd=audio.duration_s * self.usd_per_second
                        + chars / 1000 * self.usd_per_1k_chars,
                        characters=chars,
                    )
                )
            return audio

    return MeteredElevenLabsSoundscape


def _env_key(name: str) -> str | None:
    return os.environ.get(name) or None


def build_store(settings: Settings) -> BlobStore:
    """The ``[storage]`` backend. Raises ConfigError (Supabase without URL or key)."""
    if settings.storage.backend == "supabase":
        from orchestrator.supabase_storage import (
            SupabaseBlobStore,
            SupabaseConfigError,
            check_config,
        )

        try:
            url, key = check_config()
        except SupabaseConfigError as exc:
            raise ConfigError(str(exc)) from exc
        return SupabaseBlobStore(url, key, timeout_s=settings.storage.timeout_s)
    return LocalBlobStore(settings.blob_root)


def build_pool(settings: Settings) -> GpuPool:
    """The ``[gpu]`` backend (Modal: credentials are checked by ``check_backends`` first)."""
    gpu = settings.gpu
    if gpu.backend == "modal":
        from gpu.modal_pool import ModalGpuPool

        return ModalGpuPool(
            app_name=gpu.modal_app,
            cls_name=gpu.modal_cls,
            max_containers=gpu.max_containers,
            environment_name=gpu.modal_environment,
            poll_s=gpu.poll_s,
            max_wait_s=gpu.max_wait_s,
            submit_timeout_s=gpu.submit_timeout_s,
            submit_attempts=gpu.submit_attempts,
        )
    return LocalGpuPool(slots=gpu.max_containers, delay_s=gpu.delay_s, workers=gpu.workers)


def build_scene(settings: Settings) -> SceneAnalyzer:
    """The ``[scene]`` backend; Claude without ANTHROPIC_API_KEY is built "not configured"."""
    sc = settings.scene
    if sc.backend == "claude":
        from orchestrator.claude_scene import ENV_KEY

        key = _env_key(ENV_KEY)
        if key is None:
            log.warning(
                "integration_not_configured",
                part="scene",
                backend="claude",
                reason=f"{ENV_KEY} is not set: memories get scene = null",
            )
        return metered_claude()(
            key,
            model=sc.model,
            timeout_s=sc.timeout_s,
            max_retries=sc.max_retries,
            max_tokens=sc.max_tokens,
            input_usd_per_mtok=sc.price_per_mtok_input,
            output_usd_per_mtok=sc.price_per_mtok_output,
            base_url=sc.base_url,
        )
    return OfflineSceneAnalyzer()


def build_soundscape(settings: Settings) -> Soundscape:
    """The ``[soundscape]`` backend; ElevenLabs without a key is built "not configured"."""
    so = settings.soundscape
    if so.backend == "elevenlabs":
        from orchestrator.elevenlabs_soundscape import ENV_KEY

        key = _env_key(ENV_KEY)
        if key is None:
            log.warning(
                "integration_not_configured",
                part="soundscape",
                backend="elevenlabs",
                reason=f"{ENV_KEY} is not set: memories get audio = null",
            )
        return metered_elevenlabs()(
            key,
            duration_s=so.duration_s,
            prompt_influence=so.prompt_influence,
            loop=so.loop,
            timeout_s=so.timeout_s,
            base_url=so.base_url,
            usd_per_second=so.price_per_second,
            usd_per_1k_chars=so.price_per_1k_chars,
        )
    return NoSoundscape()


def profile_from(settings: Settings) -> GenerationProfile:
    """The generation profile the service generates every chunk with."""
    g = settings.generation
    return GenerationProfile(
        frames=g.frames,
        width=g.width,
        height=g.height,
        fps=g.fps,
        steps=g.steps,
        seed=g.seed,
        model=g.model,
    )
