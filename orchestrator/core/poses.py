"""Pose strings and frontend actions: parse, validate, canonicalise (pure: no I/O, no clock).

Rules (DESIGN.md "Poses", taken from HY-WorldPlay's own code):

- A pose is comma-separated ``ACTION-N`` segments; ACTION is one of ``ACTIONS`` and N a positive
  count of latent steps. Segments run one after another, never at the same time.
- One latent = 4 video frames: ``latents = (frames - 1) // 4 + 1`` (125 frames -> 32 latents), and
  the steps must sum to exactly ``latents - 1`` (31 for 125 frames): the model asserts one pose
  per latent and does no padding. HY-WorldPlay generates ``frames = 4k + 1``, enforced here.
- The bidirectional model also needs ``latents % 16 == 0``; that depends on the model variant and
  is the generation profile's concern, not checked here.

The canonical string (``str(Pose)``) is lowercase, ``", "``-separated, with adjacent segments of
the same action merged (``"W-10 ,w-21"`` -> ``"w-31"``). It is what chunk keys and the database use.

Actions are what the frontend offers (``ACTION_NAMES``): the 8 single keys and the 16 combinations
of one move key and one camera key (``"w+right"``). Since segments are sequential, a combination is
move-then-turn: ``w+right`` -> ``w-16, right-15``. Two move keys (``w+a``) or two camera keys are
not actions: the frontend's combinations are WASD + joystick, and keeping 24 actions bounds the
speculation branching factor; opposites (``w+s``, ``left+right``) are thus never valid. The seed's
``w-20, right-10`` sums to 30 and would be rejected by the model (and by ``parse_pose``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

ACTIONS: tuple[str, ...] = ("w", "s", "a", "d", "up", "down", "left", "right")
"""Pose tokens (HY-WorldPlay): w/s/a/d translate, up/down/left/right rotate the camera."""
MOVE_KEYS: tuple[str, ...] = ("w", "s", "a", "d")
CAMERA_KEYS: tuple[str, ...] = ("up", "down", "left", "right")
ACTION_NAMES: tuple[str, ...] = ACTIONS + tuple(f"{m}+{c}" for m in MOVE_KEYS for c in CAMERA_KEYS)
"""The 24 discrete actions the frontend offers: 8 single keys, then ``<move>+<camera>``."""

MAX_POSE_CHARS = 512
"""Longest pose/action text accepted (guards against pathological inputs)."""

_ALLOWED = ", ".join(ACTIONS)
_SEGMENT = re.compile(r"([a-z]+)-(.*)")
_COUNT = re.compile(r"[0-9]+")


class PoseError(ValueError):
    """A pose or action from a client broke a rule; ``str(err)`` is the rule.

    Attributes:
        field: ``"pose"`` or ``"action"``: which request field was wrong.
        rule: a short sentence a frontend developer can act on.
    """

    def __init__(self, field: Literal["pose", "action"], rule: str) -> None:
        super().__init__(rule)
        self.field: str = field
        self.rule: str = rule


@dataclass(frozen=True, slots=True)
class PoseSegment:
    """One ``ACTION-N`` segment: ``steps`` latent steps of ``action`` (one of ``ACTIONS``).

    Raises:
        PoseError(field="pose"): unknown action or steps not a positive int.
    """

    action: str
    steps: int

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise PoseError("pose", f"unknown action {self.action!r}; allowed: {_ALLOWED}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise PoseError("pose", f"steps must be a positive integer (got {self.steps!r})")

    def __str__(self) -> str:
        return f"{self.action}-{self.steps}"


@dataclass(frozen=True, slots=True)
class Pose:
    """A validated pose: segments run one after another (HY-WorldPlay).

    Construction merges adjacent segments of the same action, so two poses are equal exactly when
    their canonical strings are. The step total is not checked against a frame count here; use
    ``parse_pose``/``action_to_pose``, which do.

    Raises:
        PoseError(field="pose"): no segments.
    """

    segments: tuple[PoseSegment, ...]

    def __post_init__(self) -> None:
        if not self.segments:
            raise PoseError("pose", "a pose needs at least one segment, e.g. 'w-31'")
        merged: list[PoseSegment] = []
        for seg in self.segments:
            if merged and merged[-1].action == seg.action:
                merged[-1] = PoseSegment(seg.action, merged[-1].steps + seg.steps)
            else:
                merged.append(seg)
        object.__setattr__(self, "segments", tuple(merged))

    @property
    def total_steps(self) -> int:
        """Sum of the segments' steps (latent steps = latents - 1 for a valid chunk pose)."""
        return sum(seg.steps for seg in self.segments)

    def step_actions(self) -> tuple[str, ...]:
        """One action per latent step, in order (length ``total_steps``)."""
        return tuple(seg.action for seg in self.segments for _ in range(seg.steps))

    def __str__(self) -> str:
        """Canonical string: lowercase, ``", "``-separated, e.g. ``"a-15, right-16"``."""
        return ", ".join(str(seg) for seg in self.segments)


def latents_for_frames(frames: int) -> int:
    """Latent frames for ``frames`` video frames: ``(frames - 1) // 4 + 1`` (125 -> 32).

    Raises:
        ValueError: frames < 1 or ``(frames - 1) % 4 != 0`` (HY-WorldPlay generates 4k + 1 frames).
    """
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ValueError(f"frames must be a positive integer (got {frames!r})")
    if (frames - 1) % 4 != 0:
        raise ValueError(f"frames must be 4k + 1 (1 latent = 4 video frames), got {frames}")
    return (frames - 1) // 4 + 1


def steps_for_frames(frames: int) -> int:
    """Pose steps a chunk of ``frames`` video frames needs: latents - 1 (31 for 125 frames).

    Raises:
        ValueError: as ``latents_for_frames``.
    """
    return latents_for_frames(frames) - 1


def _show(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _check_length(text: object, field: Literal["pose", "action"]) -> str:
    if not isinstance(text, str):
        raise PoseError(field, f"{field} must be a string (got {type(text).__name__})")
    if len(text) > MAX_POSE_CHARS:
        raise PoseError(field, f"{field} is too long ({len(text)} > {MAX_POSE_CHARS} characters)")
    return text


def parse_pose(text: str, frames: int = 125) -> Pose:
    """Parse and validate a pose string for a chunk of ``frames`` video frames.

    Grammar (HY-WorldPlay, DESIGN.md "Poses"): comma-separated ``ACTION-N``; whitespace is ignored
    anywhere, case too; N is a positive decimal integer of latent steps (no sign). The steps must
    sum to exactly ``steps_for_frames(frames)``. Adjacent equal actions are merged.

    Raises:
        PoseError(field="pose"): empty, longer than ``MAX_POSE_CHARS``, a malformed segment (the
            message names the 1-based segment index and its text), or a wrong step sum.
        ValueError: ``frames`` is not 4k + 1.
    """
    text = _check_length(text, "pose")
    expected = steps_for_frames(frames)
    if not "".join(text.split()):
        raise PoseError("pose", "pose is empty; expected e.g. 'w-31' (ACTION-N, comma-separated)")
    segments: list[PoseSegment] = []
    for index, raw in enumerate(text.split(","), start=1):
        where = f"segment {index} ({_show(raw)})"
        seg = "".join(raw.split()).lower()
        if not seg:
            raise PoseError("pose", f"{where} is empty: remove the extra comma")
        match = _SEGMENT.fullmatch(seg)
        if match is None:
            raise PoseError("pose", f"{where} must look like ACTION-N, e.g. 'w-31'")
        action, count = match.groups()
        if action not in ACTIONS:
            raise PoseError("pose", f"{where}: unknown action {action!r}; allowed: {_ALLOWED}")
        if _COUNT.fullmatch(count) is None:
            rule = f"{where}: step count must be a positive integer, no sign (got {count!r})"
            raise PoseError("pose", rule)
        if int(count) == 0:
            raise PoseError("pose", f"{where}: step count must be at least 1 (got {count!r})")
        segments.append(PoseSegment(action, int(count)))
    pose = Pose(tuple(segments))
    if pose.total_steps != expected:
        raise PoseError(
            "pose",
            f"steps must sum to {expected} for {frames} frames (got {pose.total_steps}): "
            "HY-WorldPlay needs one pose per latent after the first",
        )
    return pose


def canonical_pose(text: str, frames: int = 125) -> str:
    """The canonical string of a pose (``str(parse_pose(text, frames))``).

    Raises:
        PoseError, ValueError: as ``parse_pose``.
    """
    return str(parse_pose(text, frames))


def normalize_action(name: str) -> str:
    """The ``ACTION_NAMES`` entry for ``name``: case/whitespace-insensitive, either order.

    ``" Right + W "`` -> ``"w+right"``. Combinations are one move key plus one camera key.

    Raises:
        PoseError(field="action"): not a valid action (the message lists the valid ones).
    """
    name = _check_length(name, "action")
    key = "".join(name.split()).lower()
    parts = key.split("+")
    if len(parts) == 1 and key in ACTIONS:
        return key
    if len(parts) == 2:
        moves = [p for p in parts if p in MOVE_KEYS]
        cameras = [p for p in parts if p in CAMERA_KEYS]
        if len(moves) == 1 and len(cameras) == 1:
            return f"{moves[0]}+{cameras[0]}"
    raise PoseError(
        "action",
        f"unknown action {_show(name)}: use one key ({_ALLOWED}) or one move key plus one camera"
        f" key joined by '+', e.g. 'w+right'; valid actions: {', '.join(ACTION_NAMES)}",
    )


def action_to_pose(action: str, frames: int = 125) -> Pose:
    """The canonical pose of an action for a chunk of ``frames`` video frames.

    A single key gets every step (``w`` -> ``w-31``). HY-WorldPlay runs segments sequentially, so
    a combination is move-then-turn: the move key gets ceil(n/2) steps, then the camera key
    floor(n/2) (``w+right`` -> ``w-16, right-15`` for n = 31). The seed's ``w-20, right-10`` sums
    to 30 and would be rejected.

    Raises:
        PoseError(field="action"): unknown action.
        ValueError: ``frames`` is not 4k + 1, or gives too few steps (< 1, or < 2 for a
            combination) to express the action.
    """
    name = normalize_action(action)
    steps = steps_for_frames(frames)
    parts = name.split("+")
    if steps < len(parts):
        raise ValueError(f"{frames} frames give {steps} pose steps, too few for action {name!r}")
    if len(parts) == 1:
        return Pose((PoseSegment(name, steps),))
    move, camera = parts
    return Pose((PoseSegment(move, (steps + 1) // 2), PoseSegment(camera, steps // 2)))


@lru_cache(maxsize=32)
def _pose_table(frames: int) -> dict[Pose, str]:
    steps = steps_for_frames(frames)
    return {
        action_to_pose(name, frames): name for name in ACTION_NAMES if steps >= len(name.split("+"))
    }


def pose_to_action(pose: Pose | str, frames: int = 125) -> str | None:
    """The action whose canonical pose equals ``pose`` for ``frames`` frames, else None.

    Used for analytics when a client sends a raw pose. A Pose whose step total does not match
    ``frames`` simply maps to None.

    Raises:
        PoseError(field="pose"): ``pose`` is a string that ``parse_pose`` rejects.
        ValueError: ``frames`` is not 4k + 1.
    """
    parsed = parse_pose(pose, frames) if isinstance(pose, str) else pose
    return _pose_table(frames).get(parsed)
