"""Soundscape by ElevenLabs sound effects: the scene's sound keywords in, an MP3 ambience out.

Production counterpart of ``NoSoundscape`` (DESIGN.md "Real parts and their embedded
defaults"). elevenlabs 2.78: ``AsyncElevenLabs().text_to_sound_effects.convert(text=...,
duration_seconds=0.5..30, prompt_influence=0..1)`` is an async generator of MP3 byte chunks,
iterated, not awaited (DESIGN.md "Facts checked on this machine"); it POSTs
``/v1/sound-generation``. The default output format is MP3 (44.1 kHz, 128 kbps), hence
``content_type="audio/mpeg"``.
"""

from __future__ import annotations

import os

import httpx
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError as ElevenLabsApiError

from orchestrator.scene import SceneInfo
from orchestrator.soundscape import Audio

ENV_KEY = "ELEVENLABS_API_KEY"
MIN_DURATION_S = 0.5
MAX_DURATION_S = 30.0
"""The API's bounds on ``duration_seconds`` (elevenlabs SDK docstring)."""
MAX_KEYWORDS = 6


class SoundscapeError(RuntimeError):
    """ElevenLabs could not make the ambience. ``transient``: a retry later may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class SoundscapeConfigError(RuntimeError):
    """ElevenLabs soundscapes are selected but ELEVENLABS_API_KEY is missing."""


def check_config(api_key: str | None = None) -> str:
    """The API key to use, from the argument or ELEVENLABS_API_KEY (fail fast at startup).

    Raises:
        SoundscapeConfigError: no key.
    """
    key = api_key or os.environ.get(ENV_KEY)
    if not key:
        raise SoundscapeConfigError(
            f"ElevenLabs soundscapes are selected but {ENV_KEY} is not set "
            "(create a key at https://elevenlabs.io/app/settings/api-keys)"
        )
    return key


def sound_prompt(scene: SceneInfo) -> str:
    """The text sent to ElevenLabs: an ambience built from the scene's sound keywords and mood.

    Falls back to the description when the scene names no sounds.
    """
    keywords = [k.strip() for k in scene.sound_keywords if k.strip()][:MAX_KEYWORDS]
    if keywords:
        text = "Ambient soundscape, continuous and seamless: " + ", ".join(keywords)
    else:
        text = f"Ambient soundscape of this place: {scene.description}"
    if scene.mood.strip():
        text += f". Mood: {scene.mood.strip()}"
    return text[:1000]


class ElevenLabsSoundscape:
    """Soundscape backed by ElevenLabs' sound-effects model.

    Args:
        api_key: ElevenLabs API key; None makes ``generate`` fail and ``health`` say
            "not configured".
        duration_s: clip length in seconds, clamped to the API's 0.5..30.
        prompt_influence: 0..1; higher follows the text more closely (API default 0.3).
        loop: ask for a clip that loops seamlessly (the player repeats it under every chunk).
        timeout_s: request timeout in seconds.
        base_url: API root; None for ElevenLabs' (tests point it at a local server).
        usd_per_second: price per generated second in USD, for ``cost_usd`` (0 when unknown:
            ElevenLabs bills credits per second of sound by plan).
    """

    name = "elevenlabs"

    def __init__(
        self,
        api_key: str | None,
        *,
        duration_s: float = 20.0,
        prompt_influence: float = 0.3,
        loop: bool = True,
        timeout_s: float = 120.0,
        base_url: str | None = None,
        usd_per_second: float = 0.0,
    ) -> None:
        if not 0.0 <= prompt_influence <= 1.0:
            raise ValueError(f"prompt_influence must be within 0..1 (got {prompt_influence})")
        self.duration_s = min(MAX_DURATION_S, max(MIN_DURATION_S, duration_s))
        self.prompt_influence = prompt_influence
        self.loop = loop
        self.usd_per_second = usd_per_second
        self.calls = 0
        self.seconds_generated = 0.0
        self._last_error: str | None = None
        # Our own httpx client, so close() can release its connections.
        self._http = (
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) if api_key else None
        )
        self._client = (
            AsyncElevenLabs(
                api_key=api_key, base_url=base_url, timeout=timeout_s, httpx_client=self._http
            )
            if api_key
            else None
        )

    async def generate(self, scene: SceneInfo) -> Audio | None:
        """An MP3 ambience for ``scene`` (``duration_s`` seconds).

        Raises:
            SoundscapeError: no key, the API refused or failed, or it returned no audio.
        """
        if self._client is None:
            raise SoundscapeError(f"{ENV_KEY} is not configured", transient=False)
        chunks: list[bytes] = []
        try:
            # An async generator: iterate it; the HTTP status is checked on the first step.
            async for chunk in self._client.text_to_sound_effects.convert(
                text=sound_prompt(scene),
                duration_seconds=self.duration_s,
                prompt_influence=self.prompt_influence,
                loop=self.loop,
            ):
                chunks.append(chunk)
        except Exception as exc:
            raise self._fail(_describe(exc), transient=_is_transient(exc)) from exc
        data = b"".join(chunks)
        if not data:
            raise self._fail("ElevenLabs returned an empty audio body", transient=True)
        self.calls += 1
        self.seconds_generated += self.duration_s
        self._last_error = None
        return Audio(data=data, content_type="audio/mpeg", duration_s=self.duration_s)

    def _fail(self, message: str, *, transient: bool) -> SoundscapeError:
        self._last_error = message
        return SoundscapeError(message, transient=transient)

    def health(self) -> dict[str, object]:
        """not configured (no key) / ok / degraded with the last error; plus usage."""
        report: dict[str, object] = {"backend": "elevenlabs", "duration_s": self.duration_s}
        if self._client is None:
            report.update(status="not configured", detail=f"{ENV_KEY} is not set")
            return report
        report["status"] = "degraded" if self._last_error else "ok"
        if self._last_error:
            report["error"] = self._last_error
        report["usage"] = {
            "calls": self.calls,
            "seconds": self.seconds_generated,
            "cost_usd": round(self.seconds_generated * self.usd_per_second, 6),
        }
        return report

    async def close(self) -> None:
        """Release the HTTP connections."""
        if self._http is not None:
            await self._http.aclose()


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, ElevenLabsApiError):
        status = exc.status_code or 0
        return status in (408, 409, 429) or status >= 500
    return isinstance(exc, httpx.TransportError)


def _describe(exc: Exception) -> str:
    """One key-free sentence (the SDK's own str() dumps response headers)."""
    if isinstance(exc, ElevenLabsApiError):
        status = exc.status_code
        if status == 401:
            return f"ElevenLabs rejected the API key (HTTP 401): check {ENV_KEY}"
        if status == 429:
            return "ElevenLabs rate limit or quota reached (HTTP 429); retry later"
        return f"ElevenLabs API error (HTTP {status}): {_body_message(exc.body)}"[:300]
    if isinstance(exc, httpx.TimeoutException):
        return "ElevenLabs request timed out"
    if isinstance(exc, httpx.TransportError):
        return f"cannot reach the ElevenLabs API ({type(exc).__name__})"
    return f"ElevenLabs call failed: {type(exc).__name__}: {exc}"[:300]


def _body_message(body: object) -> str:
    # Error bodies look like {"detail": {"status": ..., "message": ...}} or, for 422,
    # {"detail": [{"loc": [...], "msg": ...}]}.
    detail = body.get("detail", body) if isinstance(body, dict) else body
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("status") or detail)
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        return "; ".join(str(d.get("msg", d)) for d in detail[:3])
    return str(detail)
