"""Scene analysis: what the photo shows, in the ``scene`` shape of ``POST /api/memories``.

Production uses Claude; the embedded default (``OfflineSceneAnalyzer``) derives a modest,
deterministic description from image statistics so the service works with no keys. It guesses
only what pixels can support (sky, foliage, water, light, colour) and marks guesses with "?".
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image
from pydantic import BaseModel, Field

from orchestrator.media import png_to_rgb_array

Floats = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]

ANALYSIS_SIDE_PX = 128
"""Photos are box-downscaled so the longest side is this many pixels: statistics barely change
and the analysis stays a few milliseconds of CPU whatever the upload size."""
GRID = 4
"""Anchor candidates are the cells of a GRID x GRID grid."""


class AnchorPoint(BaseModel):
    """A point of interest; x, y are fractions of width and height from the top-left corner."""

    label: str = Field(min_length=1)
    x: float = Field(ge=0.0, le=1.0)
    y: float = Field(ge=0.0, le=1.0)


class SceneInfo(BaseModel):
    """The ``scene`` object of the API (seed contract), also stored on the memory row."""

    description: str = Field(min_length=1)
    mood: str
    anchor_points: list[AnchorPoint]
    sound_keywords: list[str]


class SceneAnalyzer(Protocol):
    """Describes a photo. Implementations: ``OfflineSceneAnalyzer`` here, Claude elsewhere."""

    name: str

    async def analyze(self, photo_png: bytes, prompt: str | None) -> SceneInfo:
        """Describe ``photo_png`` (a normalised RGB PNG), using the user's ``prompt`` if any."""
        ...

    def health(self) -> dict[str, object]:
        """Status for ``/api/health``, e.g. {"status": "ok", "backend": "offline"}."""
        ...


class OfflineSceneAnalyzer:
    """Deterministic image-statistics analysis: same image and prompt, same SceneInfo."""

    name: str = "offline"

    async def analyze(self, photo_png: bytes, prompt: str | None) -> SceneInfo:
        """Describe the photo off the event loop (numpy work runs in a worker thread).

        Raises:
            OSError: ``photo_png`` is not a readable image (callers pass ``Photo.png``).
        """
        return await asyncio.to_thread(describe_photo, photo_png, prompt)

    def health(self) -> dict[str, object]:
        """Always ok: no external service is involved."""
        return {
            "status": "ok",
            "backend": "offline",
            "detail": "deterministic image-statistics scene analysis (no Claude key configured)",
        }


# Words in the user's prompt that imply sounds (and a mood) the pixels cannot reveal:
# (trigger words, sounds separated by "|", mood or "").
_PROMPT_CUE_TABLE = (
    ("beach ocean sea coast shore surf", "ocean waves|seagulls", "peaceful"),
    ("lake river stream waterfall creek", "flowing water", "peaceful"),
    ("forest wood park garden hike trail tree", "birdsong|rustling leaves", ""),
    ("city street downtown town market", "distant traffic|city bustle", "lively"),
    ("rain rainy storm", "rain", "melancholic"),
    ("snow snowy winter ski", "winter wind|crunching snow", "crisp"),
    ("fire campfire fireplace bonfire", "crackling fire", "cozy"),
    ("party wedding birthday celebration festival", "crowd chatter|laughter", "joyful"),
    ("cafe coffee restaurant kitchen dinner", "cafe chatter|clinking cups", "cozy"),
    ("mountain cliff summit", "mountain wind", "awed"),
    ("night evening camping", "crickets", "hushed"),
    ("train station railway", "train passing", ""),
    ("kid child children playground school", "children playing", "joyful"),
)
_PROMPT_CUES = tuple(
    (frozenset(words.split()), tuple(sounds.split("|")), mood)
    for words, sounds, mood in _PROMPT_CUE_TABLE
)


@dataclass(frozen=True, slots=True)
class _Features:
    brightness: float  # mean luma, 0..1
    contrast: float  # luma standard deviation, 0..~0.5
    colourfulness: float  # Hasler & Suesstrunk metric on a 0..255 scale (<15 muted, >60 vivid)
    warmth: float  # mean(R - B), -1..1
    dominant_hue: str | None
    sky: bool
    glow: bool  # warm, saturated top third: sunset / golden hour
    greenery: bool
    greenery_low: bool
    water: bool

    @property
    def outdoor(self) -> bool:
        return self.sky or self.glow or self.greenery or self.water


def describe_photo(photo_png: bytes, prompt: str | None) -> SceneInfo:
    """Synchronous core of ``OfflineSceneAnalyzer.analyze``; CPU-bound, a few milliseconds."""
    rgb = _downscale(png_to_rgb_array(photo_png))
    hue, sat, val = _hsv(rgb)
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722])
    feats = _features(rgb, luma, hue, sat, val)
    said = _prompt_words(prompt)
    cues = [(sounds, mood) for words, sounds, mood in _PROMPT_CUES if words & said]
    # The user's own words come first: they know what the place sounded like.
    sounds = [s for cue_sounds, _ in cues for s in cue_sounds] + _sounds(feats)
    moods = [m for _, m in cues if m] + _moods(feats)
    return SceneInfo(
        description=_description(feats, prompt),
        mood=", ".join(_unique(moods)[:3]),
        anchor_points=_anchors(rgb, luma, hue, sat, val),
        sound_keywords=_unique(sounds)[:6],
    )


def _downscale(rgb: npt.NDArray[np.uint8]) -> Floats:
    h, w = rgb.shape[:2]
    scale = min(1.0, ANALYSIS_SIDE_PX / max(h, w))
    # At least GRID * 2 px a side so every grid cell holds pixels, even for a panorama strip.
    size = (max(GRID * 2, round(w * scale)), max(GRID * 2, round(h * scale)))
    small = Image.fromarray(rgb).resize(size, Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float64) / 255.0


def _hsv(rgb: Floats) -> tuple[Floats, Floats, Floats]:
    """Hue in degrees 0..360, saturation and value 0..1 (standard hexcone model)."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    mx, mn = rgb.max(axis=-1), rgb.min(axis=-1)
    delta = mx - mn
    safe = np.where(delta > 0, delta, 1.0)
    hue = np.select(
        [mx == r, mx == g], [((g - b) / safe) % 6.0, (b - r) / safe + 2.0], (r - g) / safe + 4.0
    )
    hue = np.where(delta > 0, hue * 60.0, 0.0)
    sat = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return hue, sat, mx


def _features(rgb: Floats, luma: Floats, hue: Floats, sat: Floats, val: Floats) -> _Features:
    h = rgb.shape[0]
    top, bottom, lower = slice(0, max(1, h // 3)), slice(h - max(1, h // 3), h), slice(h // 3, h)
    chroma = (sat > 0.2) & (val > 0.15)
    blue = chroma & (hue >= 180) & (hue <= 250) & (val > 0.35)
    green = chroma & (hue >= 65) & (hue <= 165)
    warm = chroma & ((hue < 50) | (hue > 330)) & (val > 0.4)
    gy, gx = np.gradient(luma)
    # Skies are smooth: orange fur or a blue shirt at the top of a close-up has far more edges
    # (mean gradient ~0.04+ per px at 128 px against ~0.005 for sky).
    smooth = np.hypot(gx, gy) < 0.03
    rg = (rgb[..., 0] - rgb[..., 1]) * 255.0
    yb = (0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]) * 255.0
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    top_blue, bottom_blue = float(blue[top].mean()), float(blue[bottom].mean())
    top_luma, bottom_luma = float(luma[top].mean()), float(luma[bottom].mean())
    return _Features(
        brightness=float(luma.mean()),
        contrast=float(luma.std()),
        colourfulness=colourfulness,
        warmth=float((rgb[..., 0] - rgb[..., 2]).mean()),
        dominant_hue=_dominant_hue(hue, sat, chroma),
        sky=float((blue & smooth)[top].mean()) > 0.25 and top_blue >= bottom_blue,
        glow=float((warm & smooth)[top].mean()) > 0.3
        and top_luma > 0.55
        and top_luma > bottom_luma + 0.1,
        greenery=float(green.mean()) > 0.12,
        greenery_low=float(green[lower].mean()) > float(green[top].mean()),
        water=bottom_blue > 0.3,
    )


_HUE_NAMES = (
    (15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (195, "teal"),
    (255, "blue"), (290, "purple"), (335, "pink"), (360, "red"),
)  # fmt: skip


def _hue_name(degrees: float) -> str:
    return next(name for limit, name in _HUE_NAMES if degrees < limit)


def _dominant_hue(hue: Floats, sat: Floats, chroma: Mask) -> str | None:
    """Name of the saturation-weighted peak of a 12-bin hue histogram, None if mostly grey."""
    if chroma.mean() < 0.1:
        return None
    hist, edges = np.histogram(hue[chroma], bins=12, range=(0.0, 360.0), weights=sat[chroma])
    peak = int(np.argmax(hist))  # first maximum on ties: deterministic
    return _hue_name(float(edges[peak] + 15.0))


def _description(f: _Features, prompt: str | None) -> str:
    light = (
        "dark" if f.brightness < 0.2 else "dim" if f.brightness < 0.4
        else "softly lit" if f.brightness < 0.6 else "bright"
    )  # fmt: skip
    adjectives = [light]
    if abs(f.warmth) > 0.06:
        adjectives.append("warm" if f.warmth > 0 else "cool")
    if f.colourfulness > 60:
        adjectives.append("vivid")
    elif f.colourfulness < 15:
        adjectives.append("muted")
    parts = []
    if f.glow:
        parts.append("a glowing sky above")
    elif f.sky:
        parts.append("blue sky above")
    if f.greenery:
        below = f.greenery_low and f.sky and not f.water
        parts.append("green foliage below" if below else "green foliage")
    if f.water:
        parts.append("blue water below (perhaps the sea)")
    if not parts and f.dominant_hue:
        parts.append(f"{f.dominant_hue} tones throughout")
    text = f"A {', '.join(adjectives)} {'outdoor scene' if f.outdoor else 'scene'}"
    if parts:
        text += " with " + " and ".join([", ".join(parts[:-1]), parts[-1]] if parts[:-1] else parts)
    if f.brightness < 0.18:
        text += ", probably at night"
    elif f.glow:
        text += ", perhaps around sunset"
    elif not f.outdoor:
        text += ", likely indoors or a close-up"
    text += "."
    clean = " ".join((prompt or "").split())[:280]
    if clean:
        clean = clean[0].upper() + clean[1:]
        text = f"{clean}{'' if clean[-1] in '.!?' else '.'} {text}"
    return text


def _moods(f: _Features) -> list[str]:
    light = 0 if f.brightness < 0.3 else 1 if f.brightness < 0.6 else 2
    tone = 0 if f.warmth < -0.06 else 2 if f.warmth > 0.06 else 1
    table = (
        ("mysterious", "quiet", "cozy"),
        ("calm", "peaceful", "nostalgic"),
        ("serene", "airy", "cheerful"),
    )
    moods = [table[light][tone]]
    if f.glow:
        moods.append("nostalgic")
    if f.colourfulness > 60:
        moods.append("lively")
    elif f.colourfulness < 15:
        moods.append("wistful")
    if f.contrast > 0.28:
        moods.append("dramatic")
    elif f.contrast < 0.1:
        moods.append("soft")
    return moods


def _sounds(f: _Features) -> list[str]:
    sounds: list[str] = []
    if f.water:
        sounds.append("gentle waves")
    if f.greenery:
        sounds += ["birdsong", "rustling leaves"]
    if f.sky or f.glow:
        sounds.append("gentle wind")
    if f.brightness < 0.18:
        sounds += ["crickets", "night ambience"]
    elif not f.outdoor:
        sounds += ["room tone", "soft indoor ambience"]
    if not sounds:
        sounds.append("distant outdoor ambience")
    return sounds


def _anchors(rgb: Floats, luma: Floats, hue: Floats, sat: Floats, val: Floats) -> list[AnchorPoint]:
    """2-4 salient cells: local contrast plus colour distinctness, no two cells adjacent."""
    h, w = luma.shape
    rows, cols = np.linspace(0, h, GRID + 1).astype(int), np.linspace(0, w, GRID + 1).astype(int)
    boxes = [
        (slice(int(rows[r]), int(rows[r + 1])), slice(int(cols[c]), int(cols[c + 1])))
        for r in range(GRID)
        for c in range(GRID)
    ]
    mean_rgb = rgb.reshape(-1, 3).mean(axis=0)
    contrast = np.array([luma[box].std() for box in boxes])
    distinct = np.array([np.linalg.norm(rgb[box].mean(axis=(0, 1)) - mean_rgb) for box in boxes])
    # Normalise by the strongest cell, but with a floor so sensor noise in a flat image does not
    # look salient; then beyond two anchors keep only cells close to the best one.
    score = contrast / max(float(contrast.max()), 0.05) + distinct / max(
        float(distinct.max()), 0.05
    )
    picked: list[int] = []
    for i in (int(i) for i in np.argsort(-score, kind="stable")):
        if len(picked) == 4 or (len(picked) >= 2 and score[i] < max(0.6 * score[picked[0]], 0.2)):
            break
        # Chebyshev distance >= 2 on the grid; in a 4 x 4 grid at least 2 cells always qualify.
        if all(max(abs(i // GRID - j // GRID), abs(i % GRID - j % GRID)) >= 2 for j in picked):
            picked.append(i)
    gy, gx = np.gradient(luma)
    grad = np.hypot(gx, gy)
    anchors = []
    for i in picked:
        ys, xs = np.mgrid[boxes[i]]
        weight = grad[boxes[i]]
        # Centroid of edge energy inside the cell: lands on the detail, not the cell's middle.
        if weight.sum() > 1e-9:
            cy, cx = (ys * weight).sum() / weight.sum(), (xs * weight).sum() / weight.sum()
        else:
            cy, cx = ys.mean(), xs.mean()
        label = _label(i // GRID, *(arr[boxes[i]] for arr in (luma, hue, sat, val)))
        anchors.append((label, round(float((cx + 0.5) / w), 3), round(float((cy + 0.5) / h), 3)))
    labels = [a[0] for a in anchors]
    # Equal labels get a position ("orange area, upper left"); non-adjacent cells never share one.
    return [
        AnchorPoint(label=lbl if labels.count(lbl) == 1 else f"{lbl}, {_where(x, y)}", x=x, y=y)
        for lbl, x, y in anchors
    ]


def _label(row: int, luma: Floats, hue: Floats, sat: Floats, val: Floats) -> str:
    chroma = (sat > 0.2) & (val > 0.15)
    if chroma.mean() >= 0.4:
        # Circular mean of hue (weighted by saturation) so reds near 0/360 do not average to cyan.
        rad = np.deg2rad(hue[chroma])
        mean = np.rad2deg(
            np.arctan2((np.sin(rad) * sat[chroma]).sum(), (np.cos(rad) * sat[chroma]).sum())
        )
        name = _hue_name(float(mean) % 360.0)
        if name in ("blue", "teal"):
            return "blue area (sky?)" if row < GRID / 2 else "blue area (water?)"
        if name == "green":
            return "green area (foliage?)"
    else:
        name = None
    if luma.mean() > 0.75:
        return "bright region"
    if luma.mean() < 0.2:
        return "dark region"
    return f"{name} area" if name else ("detailed region" if luma.std() > 0.15 else "grey area")


def _where(x: float, y: float) -> str:
    vert = "upper" if y < 1 / 3 else "lower" if y > 2 / 3 else "middle"
    horiz = "left" if x < 1 / 3 else "right" if x > 2 / 3 else "center"
    return "center" if (vert, horiz) == ("middle", "center") else f"{vert} {horiz}"


def _prompt_words(prompt: str | None) -> set[str]:
    """Lower-case words plus naive singulars ("beaches" -> "beach", "trees" -> "tree")."""
    words = set(re.findall(r"[a-z]+", (prompt or "").lower()))
    singulars = {w[:-2] for w in words if w.endswith("es")}
    return words | singulars | {w[:-1] for w in words if w.endswith("s")}


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
