"""Scene analysis by Claude: the photo in, the API's ``scene`` object (SceneInfo) out.

Production counterpart of ``OfflineSceneAnalyzer`` (DESIGN.md "Real parts and their embedded
defaults"). Uses anthropic's structured outputs: ``AsyncAnthropic().messages.parse(...,
output_format=SceneInfo)`` sends SceneInfo's JSON schema as ``output_config.format`` and
validates the answer with pydantic (present in the installed anthropic 2.12, see
``anthropic/resources/messages/messages.py``; DESIGN.md "Facts checked on this machine"). The
photo goes as a base64 image block, downscaled first: Claude resizes anything longer than
1568 px anyway and rejects images over 5 MB (Anthropic vision docs).

Every call's input/output tokens are recorded (``usage``) so the cost in USD of scene analysis
can be reported; failures become ``SceneAnalysisError`` with a message that never includes the
API key.
"""

from __future__ import annotations

import asyncio
import base64
import io
import os
from dataclasses import dataclass

import anthropic
from PIL import Image
from pydantic import ValidationError

from orchestrator.scene import SceneInfo

ENV_KEY = "ANTHROPIC_API_KEY"
DEFAULT_MODEL = "claude-haiku-4-5"
"""Cheapest current Claude model with vision and structured outputs; a scene needs no more."""
MAX_IMAGE_SIDE_PX = 1568
"""Longest image side sent, pixels (Anthropic downsizes larger images server-side anyway)."""

SYSTEM_PROMPT = """You describe a personal photo for an app that turns it into an explorable,
walk-through video with ambient sound. Answer with the JSON object only.
- description: one or two sentences on what the place looks like (setting, light, time of day).
- mood: two or three comma-separated mood words.
- anchor_points: 2 to 4 salient things a viewer may walk towards; label is a short noun phrase,
  x and y are fractions (0.0 to 1.0) of width and height measured from the top-left corner.
- sound_keywords: 3 to 6 short phrases naming sounds one would hear there (e.g. "ocean waves").
Use the user's note when given; do not invent people or events the photo does not show."""


class SceneAnalysisError(RuntimeError):
    """Claude could not describe the photo. ``transient``: a retry later may succeed."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


class SceneConfigError(RuntimeError):
    """Claude scene analysis is selected but ANTHROPIC_API_KEY is missing."""


def check_config(api_key: str | None = None) -> str:
    """The API key to use, from the argument or ANTHROPIC_API_KEY (fail fast at startup).

    Raises:
        SceneConfigError: no key.
    """
    key = api_key or os.environ.get(ENV_KEY)
    if not key:
        raise SceneConfigError(
            f"Claude scene analysis is selected but {ENV_KEY} is not set "
            "(create a key at https://console.anthropic.com/settings/keys)"
        )
    return key


@dataclass
class TokenUsage:
    """Claude usage since start: calls, tokens, and the cost they imply in USD."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class ClaudeSceneAnalyzer:
    """SceneAnalyzer backed by Claude.

    Args:
        api_key: Anthropic API key; None makes ``analyze`` fail and ``health`` say
            "not configured" (use ``check_config`` to fail at startup instead).
        model: Claude model id.
        timeout_s: per-request timeout, seconds.
        max_retries: the SDK's own retries of 408/409/429/5xx and connection errors (with back-off).
        max_tokens: cap on the answer's length, tokens (a SceneInfo is ~200).
        input_usd_per_mtok, output_usd_per_mtok: price in USD per million tokens, for ``usage``
            (defaults: Anthropic's list price of claude-haiku-4-5, $1 in / $5 out).
        base_url: API root; None for Anthropic's (tests point it at a local server).
    """

    name = "claude"

    def __init__(
        self,
        api_key: str | None,
        *,
        model: str = DEFAULT_MODEL,
        timeout_s: float = 60.0,
        max_retries: int = 2,
        max_tokens: int = 1024,
        input_usd_per_mtok: float = 1.0,
        output_usd_per_mtok: float = 5.0,
        base_url: str | None = None,
    ) -> None:
        self.model = model
        self.max_tokens = max_tokens
        self.input_usd_per_mtok = input_usd_per_mtok
        self.output_usd_per_mtok = output_usd_per_mtok
        self.usage = TokenUsage()
        self._last_error: str | None = None
        self._client = (
            anthropic.AsyncAnthropic(
                api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=max_retries
            )
            if api_key
            else None
        )

    async def analyze(self, photo_png: bytes, prompt: str | None) -> SceneInfo:
        """Describe ``photo_png`` (RGB PNG bytes) with Claude, using the user's ``prompt``.

        Raises:
            SceneAnalysisError: no key, the API refused or failed, or the answer did not fit
                SceneInfo. ``transient`` is True for rate limits, overload, 5xx, timeouts.
        """
        if self._client is None:
            raise SceneAnalysisError(f"{ENV_KEY} is not configured", transient=False)
        try:
            image_b64 = await asyncio.to_thread(_jpeg_base64, photo_png)
        except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
            # The input's fault, not Claude's: health stays as it was.
            msg = f"photo is not a readable image: {exc}"
            raise SceneAnalysisError(msg, transient=False) from exc
        note = " ".join((prompt or "").split())
        text = f"The user's note about this photo: {note}" if note else "No note from the user."
        try:
            message = await self._client.messages.parse(
                model=self.model,
                max_tokens=self.max_tokens,
                system=SYSTEM_PROMPT,
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/jpeg",
                                    "data": image_b64,
                                },
                            },
                            {"type": "text", "text": text},
                        ],
                    }
                ],
                output_format=SceneInfo,
            )
        except Exception as exc:
            raise self._fail(_describe(exc), transient=_is_transient(exc)) from exc
        self._record(message.usage.input_tokens, message.usage.output_tokens)
        scene = message.parsed_output
        if scene is None:
            # A refusal or a max_tokens stop leaves no parsable JSON text block.
            raise self._fail(
                f"Claude returned no scene (stop_reason={message.stop_reason})", transient=False
            )
        self._last_error = None
        return scene

    def _record(self, input_tokens: int, output_tokens: int) -> None:
        self.usage.calls += 1
        self.usage.input_tokens += input_tokens
        self.usage.output_tokens += output_tokens
        self.usage.cost_usd += (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / 1e6

    def _fail(self, message: str, *, transient: bool) -> SceneAnalysisError:
        self._last_error = message
        return SceneAnalysisError(message, transient=transient)

    def health(self) -> dict[str, object]:
        """not configured (no key) / ok / degraded with the last error; plus token usage."""
        report: dict[str, object] = {"backend": "claude", "model": self.model}
        if self._client is None:
            report.update(status="not configured", detail=f"{ENV_KEY} is not set")
            return report
        report["status"] = "degraded" if self._last_error else "ok"
        if self._last_error:
            report["error"] = self._last_error
        report["usage"] = {
            "calls": self.usage.calls,
            "input_tokens": self.usage.input_tokens,
            "output_tokens": self.usage.output_tokens,
            "cost_usd": round(self.usage.cost_usd, 6),
        }
        return report

    async def close(self) -> None:
        """Release the HTTP connections."""
        if self._client is not None:
            await self._client.close()


def _jpeg_base64(photo_png: bytes) -> str:
    """The photo downscaled to MAX_IMAGE_SIDE_PX and JPEG-encoded (quality 90), base64 text.

    JPEG keeps a 1568 px photo around 0.5 MB, far below the 5 MB per-image limit, where a PNG
    of a detailed photo may not be.
    """
    with Image.open(io.BytesIO(photo_png)) as img:
        rgb = img.convert("RGB")
    rgb.thumbnail((MAX_IMAGE_SIDE_PX, MAX_IMAGE_SIDE_PX), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _is_transient(exc: Exception) -> bool:
    if isinstance(exc, anthropic.APIStatusError):
        return exc.status_code in (408, 409, 429) or exc.status_code >= 500
    return isinstance(exc, anthropic.APIConnectionError)  # includes APITimeoutError


def _describe(exc: Exception) -> str:
    """One key-free sentence on what went wrong."""
    if isinstance(exc, anthropic.AuthenticationError):
        return f"Claude rejected the API key (HTTP 401): check {ENV_KEY}"
    if isinstance(exc, anthropic.PermissionDeniedError):
        return "Claude refused access (HTTP 403): the key lacks access to this model"
    if isinstance(exc, anthropic.RateLimitError):
        return "Claude rate limit reached (HTTP 429); retry later"
    if isinstance(exc, anthropic.APIStatusError):
        detail = exc.body.get("error", {}) if isinstance(exc.body, dict) else {}
        text = detail.get("message", "") if isinstance(detail, dict) else ""
        return f"Claude API error (HTTP {exc.status_code}): {text or exc.message}"[:300]
    if isinstance(exc, anthropic.APITimeoutError):
        return "Claude request timed out"
    if isinstance(exc, anthropic.APIConnectionError):
        return "cannot reach the Claude API (connection error)"
    if isinstance(exc, ValidationError):
        return f"Claude's answer did not fit the scene schema ({exc.error_count()} errors)"
    return f"Claude call failed: {type(exc).__name__}: {exc}"[:300]
