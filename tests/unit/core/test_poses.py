"""Pose grammar, canonical form and action mapping (orchestrator.core.poses; DESIGN.md "Poses")."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from orchestrator.core.poses import (
    ACTION_NAMES,
    ACTIONS,
    CAMERA_KEYS,
    MAX_POSE_CHARS,
    MOVE_KEYS,
    Pose,
    PoseError,
    PoseSegment,
    action_to_pose,
    canonical_pose,
    latents_for_frames,
    normalize_action,
    parse_pose,
    pose_to_action,
    steps_for_frames,
)

FRAME_COUNTS = (33, 61, 125, 129)

frames_st = st.integers(min_value=2, max_value=64).map(lambda k: 4 * k + 1)  # 9 .. 257 frames


@st.composite
def segment_lists(draw: st.DrawFn, total: int) -> list[tuple[str, int]]:
    """A list of (action, steps) with positive steps summing to ``total`` (total >= 1)."""
    k = draw(st.integers(min_value=1, max_value=min(total, 8)))
    cuts: list[int] = []
    if k > 1:
        cuts = sorted(draw(st.sets(st.integers(1, total - 1), min_size=k - 1, max_size=k - 1)))
    bounds = [0, *cuts, total]
    steps = [b - a for a, b in itertools.pairwise(bounds)]
    actions = draw(st.lists(st.sampled_from(ACTIONS), min_size=len(steps), max_size=len(steps)))
    return list(zip(actions, steps, strict=True))


@st.composite
def valid_pose_text(draw: st.DrawFn) -> tuple[int, list[tuple[str, int]], str]:
    frames = draw(frames_st)
    segs = draw(segment_lists(steps_for_frames(frames)))
    return frames, segs, ", ".join(f"{a}-{n}" for a, n in segs)


def expand(segs: list[tuple[str, int]]) -> tuple[str, ...]:
    return tuple(a for a, n in segs for _ in range(n))


@st.composite
def messy(draw: st.DrawFn, text: str) -> str:
    """``text`` with random letter case and whitespace inserted anywhere."""
    ws = st.text(alphabet=" \t\n", max_size=2)
    out = [draw(ws)]
    for ch in text:
        out.append(ch.upper() if draw(st.booleans()) else ch)
        out.append(draw(ws))
    return "".join(out)


# --- frames and latents ---------------------------------------------------------------------


def test_latents_and_steps_for_known_frame_counts() -> None:
    assert latents_for_frames(125) == 32
    assert steps_for_frames(125) == 31
    assert latents_for_frames(129) == 33
    assert steps_for_frames(33) == 8
    assert latents_for_frames(61) == 16  # the bidirectional model needs latents % 16 == 0
    assert steps_for_frames(61) == 15
    assert latents_for_frames(1) == 1
    assert steps_for_frames(1) == 0


@given(st.integers(min_value=0, max_value=10_000))
def test_latents_is_one_per_four_frames(k: int) -> None:
    assert latents_for_frames(4 * k + 1) == k + 1
    assert steps_for_frames(4 * k + 1) == k


@pytest.mark.parametrize("frames", [0, -3, 2, 124, 126, 128])
def test_frames_not_4k_plus_1_rejected(frames: int) -> None:
    with pytest.raises(ValueError):
        latents_for_frames(frames)
    with pytest.raises(ValueError):
        parse_pose("w-31", frames)


# --- the seed's table -----------------------------------------------------------------------


def test_seed_pose_table() -> None:
    assert str(action_to_pose("w")) == "w-31"
    assert str(action_to_pose("s")) == "s-31"
    assert str(action_to_pose("a")) == "a-31"
    assert str(action_to_pose("d")) == "d-31"
    for camera in ("up", "down", "left", "right"):
        assert str(action_to_pose(camera)) == f"{camera}-31"
    assert str(action_to_pose("w+right")) == "w-16, right-15"
    assert str(action_to_pose("right + W")) == "w-16, right-15"


def test_seed_combination_example_is_rejected() -> None:
    with pytest.raises(PoseError) as info:
        parse_pose("w-20, right-10", 125)
    assert info.value.field == "pose"
    assert "sum to 31" in str(info.value)
    assert "got 30" in str(info.value)
    assert str(info.value) == info.value.rule


def test_canonical_examples() -> None:
    assert canonical_pose("W-31") == "w-31"
    assert canonical_pose("a-15,right-16") == "a-15, right-16"
    assert canonical_pose("  w - 10 ,W-21 ") == "w-31"
    assert canonical_pose("a-5, a-5, d-21") == "a-10, d-21"
    assert canonical_pose("w-031") == "w-31"
    pose = parse_pose("a-15, right-16")
    assert pose.segments == (PoseSegment("a", 15), PoseSegment("right", 16))
    assert pose.total_steps == 31
    assert pose.step_actions() == ("a",) * 15 + ("right",) * 16


# --- properties of valid poses --------------------------------------------------------------


@given(valid_pose_text())
def test_valid_segment_lists_parse(case: tuple[int, list[tuple[str, int]], str]) -> None:
    frames, segs, text = case
    pose = parse_pose(text, frames)
    assert pose.total_steps == steps_for_frames(frames)
    assert len(pose.step_actions()) == pose.total_steps
    # merging never changes what the model does at each latent step
    assert pose.step_actions() == expand(segs)
    # and leaves no two adjacent segments with the same action
    for left, right in itertools.pairwise(pose.segments):
        assert left.action != right.action
    assert all(seg.steps >= 1 and seg.action in ACTIONS for seg in pose.segments)


@given(valid_pose_text())
def test_canonical_is_a_fixed_point(case: tuple[int, list[tuple[str, int]], str]) -> None:
    frames, _, text = case
    pose = parse_pose(text, frames)
    canonical = str(pose)
    assert parse_pose(canonical, frames) == pose
    assert canonical_pose(canonical, frames) == canonical
    assert re.fullmatch(r"[a-z]+-[1-9][0-9]*(, [a-z]+-[1-9][0-9]*)*", canonical)


@given(frames_st, st.sampled_from(ACTIONS), st.data())
def test_adjacent_equal_actions_merge(frames: int, action: str, data: st.DataObject) -> None:
    n = steps_for_frames(frames)
    segs = data.draw(segment_lists(n))
    same = [(action, steps) for _, steps in segs]
    pose = parse_pose(", ".join(f"{a}-{s}" for a, s in same), frames)
    assert pose.segments == (PoseSegment(action, n),)
    assert str(pose) == f"{action}-{n}"


@given(valid_pose_text(), st.data())
def test_whitespace_and_case_are_ignored(
    case: tuple[int, list[tuple[str, int]], str], data: st.DataObject
) -> None:
    frames, _, text = case
    noisy = data.draw(messy(text))
    assert parse_pose(noisy, frames) == parse_pose(text, frames)
    assert canonical_pose(noisy, frames) == canonical_pose(text, frames)


# --- rejections -----------------------------------------------------------------------------


@given(frames_st, st.data())
def test_wrong_sums_rejected(frames: int, data: st.DataObject) -> None:
    n = steps_for_frames(frames)
    total = data.draw(st.integers(min_value=1, max_value=3 * n).filter(lambda t: t != n))
    segs = data.draw(segment_lists(total))
    with pytest.raises(PoseError) as info:
        parse_pose(", ".join(f"{a}-{s}" for a, s in segs), frames)
    assert info.value.field == "pose"
    assert f"sum to {n} for {frames} frames (got {total})" in str(info.value)


@given(st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.integers(0, 3))
def test_unknown_actions_rejected(action: str, position: int) -> None:
    assume(action not in ACTIONS)
    segs = ["w-1"] * position + [f"{action}-1"]
    with pytest.raises(PoseError) as info:
        parse_pose(", ".join(segs))
    assert info.value.field == "pose"
    assert f"segment {position + 1} ('{action}-1')" in str(info.value)
    assert f"unknown action '{action}'" in str(info.value)
    assert "w, s, a, d, up, down, left, right" in str(info.value)


@pytest.mark.parametrize(
    ("text", "index", "fragment"),
    [
        ("w-0", 1, "at least 1"),
        ("w-31, a-0", 2, "at least 1"),
        ("w--31", 1, "positive integer"),
        ("w-+31", 1, "positive integer"),
        ("w-3.5", 1, "positive integer"),
        ("w-1e3", 1, "positive integer"),
        ("w-", 1, "positive integer"),
        ("w-٣١", 1, "positive integer"),  # non-ASCII digits
        ("w31", 1, "ACTION-N"),
        ("w", 1, "ACTION-N"),
        ("-31", 1, "ACTION-N"),
        ("w-31,", 2, "empty"),
        ("w-15,,w-16", 2, "empty"),
        ("w+right-31", 1, "ACTION-N"),
    ],
)
def test_bad_segments_rejected(text: str, index: int, fragment: str) -> None:
    with pytest.raises(PoseError) as info:
        parse_pose(text)
    assert info.value.field == "pose"
    assert f"segment {index} " in str(info.value)
    assert fragment in str(info.value)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_pose_rejected(text: str) -> None:
    with pytest.raises(PoseError) as info:
        parse_pose(text)
    assert info.value.field == "pose"
    assert "empty" in info.value.rule


def test_overlong_and_non_string_rejected() -> None:
    with pytest.raises(PoseError, match="too long") as info:
        parse_pose("w-1, " * 200)
    assert info.value.field == "pose"
    assert len("w-1, " * 200) > MAX_POSE_CHARS
    with pytest.raises(PoseError) as info:
        parse_pose(None)  # type: ignore[arg-type]
    assert info.value.field == "pose"


@given(st.text(max_size=80), frames_st)
def test_garbage_only_ever_raises_pose_error(text: str, frames: int) -> None:
    try:
        pose = parse_pose(text, frames)
    except PoseError as err:
        assert err.field == "pose"
        assert str(err) == err.rule and err.rule
    else:
        assert pose.total_steps == steps_for_frames(frames)


def test_pose_values_validate_themselves() -> None:
    with pytest.raises(PoseError):
        Pose(())
    with pytest.raises(PoseError):
        PoseSegment("jump", 3)
    with pytest.raises(PoseError):
        PoseSegment("w", 0)
    assert Pose((PoseSegment("w", 10), PoseSegment("w", 21))) == Pose((PoseSegment("w", 31),))


# --- actions --------------------------------------------------------------------------------


def test_action_names() -> None:
    assert len(ACTION_NAMES) == 24
    assert len(set(ACTION_NAMES)) == 24
    assert ACTION_NAMES[:8] == ACTIONS
    combos = {f"{m}+{c}" for m in MOVE_KEYS for c in CAMERA_KEYS}
    assert set(ACTION_NAMES[8:]) == combos
    assert set(MOVE_KEYS) | set(CAMERA_KEYS) == set(ACTIONS)


@pytest.mark.parametrize("frames", FRAME_COUNTS)
@pytest.mark.parametrize("action", ACTION_NAMES)
def test_every_action_maps_to_a_valid_pose(action: str, frames: int) -> None:
    n = steps_for_frames(frames)
    pose = action_to_pose(action, frames)
    assert pose.total_steps == n
    assert parse_pose(str(pose), frames) == pose
    assert pose_to_action(pose, frames) == action
    assert pose_to_action(str(pose), frames) == action
    if "+" in action:
        move, camera = action.split("+")
        assert pose.segments == (PoseSegment(move, (n + 1) // 2), PoseSegment(camera, n // 2))
    else:
        assert pose.segments == (PoseSegment(action, n),)


@given(frames_st)
def test_actions_map_to_distinct_poses(frames: int) -> None:
    poses = {action_to_pose(a, frames) for a in ACTION_NAMES}
    assert len(poses) == len(ACTION_NAMES)


@given(st.sampled_from(ACTION_NAMES), st.booleans(), st.data())
def test_normalize_action_is_case_whitespace_and_order_insensitive(
    action: str, swap: bool, data: st.DataObject
) -> None:
    parts = action.split("+")
    if swap:
        parts.reverse()
    noisy = data.draw(messy("+".join(parts)))
    assert normalize_action(noisy) == action
    assert action_to_pose(noisy) == action_to_pose(action)


@pytest.mark.parametrize(
    "name",
    ["", "w+a", "a+w", "w+s", "left+right", "up+down", "w+w", "w+right+up", "w+", "+w", "jump",
     "w-31", "forward"],
)  # fmt: skip
def test_invalid_actions_rejected(name: str) -> None:
    for call in (normalize_action, action_to_pose):
        with pytest.raises(PoseError) as info:
            call(name)
        assert info.value.field == "action"
        assert "w+right" in info.value.rule
        assert "d+right" in info.value.rule  # lists the valid actions


def test_pose_to_action_for_free_form_poses() -> None:
    assert pose_to_action("w-31") == "w"
    assert pose_to_action(" W-16 , Right-15") == "w+right"
    assert pose_to_action("w-10, w-21") == "w"
    assert pose_to_action("right-15, w-16") is None  # turn-then-move is not an action
    assert pose_to_action("a-15, right-16") is None  # a+right is a-16, right-15
    assert pose_to_action(parse_pose("w-8", 33), 125) is None  # wrong step total
    assert pose_to_action(parse_pose("w-8", 33), 33) == "w"
    with pytest.raises(PoseError):
        pose_to_action("w-20, right-10")


def test_too_few_steps_for_an_action() -> None:
    assert str(action_to_pose("w", 5)) == "w-1"
    with pytest.raises(ValueError):
        action_to_pose("w+right", 5)
    with pytest.raises(ValueError):
        action_to_pose("w", 1)
    assert pose_to_action("w-1", 5) == "w"
    assert str(action_to_pose("s+left", 9)) == "s-1, left-1"
