"""Configuration: the example file documents every key, env beats file, typos are refused."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "rewind.example.toml"


def test_example_file_names_every_key_with_the_default_value() -> None:
    from_file = load_settings(EXAMPLE)
    assert from_file == Settings()
    documented = tomllib.loads(EXAMPLE.read_text())
    text = EXAMPLE.read_text()
    for section, model in Settings.model_fields.items():
        assert section in documented, f"[{section}] missing from the example"
        assert model.annotation is not None
        for key in model.annotation.model_fields:  # type: ignore[union-attr]
            assert f"{key} =" in text, f"{section}.{key} is not documented"


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rewind.toml"
    path.write_text('[gpu]\ndelay_s = 3.0\nmax_containers = 3\n[speculation]\npolicy = "markov"\n')
    monkeypatch.setenv("REWIND_GPU__DELAY_S", "7.5")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    s = load_settings(path)
    assert s.gpu.delay_s == 7.5 and s.gpu.max_containers == 3
    assert s.speculation.policy == "markov"
    assert s.database.url == "postgresql://u@h/db"


def test_unknown_key_and_bad_values_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "rewind.toml"
    path.write_text("[gpu]\ndely_s = 3\n")
    with pytest.raises(ValidationError, match="dely_s"):
        load_settings(path)
    path.write_text("[generation]\nframes = 124\n")
    with pytest.raises(ValidationError, match="4k\\+1"):
        load_settings(path)
    path.write_text("[speculation]\nspeculative_share = 1.5\n")
    with pytest.raises(ValidationError, match="speculative_share"):
        load_settings(path)


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_root_pose_follows_frames_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # `rewind demo --small` (33 frames) crashed with PoseError: w-31 sums to 31, not 8.
    assert load_settings(None, use_file=False, generation={"frames": 33}).generation.root_pose == (
        "w-8"
    )
    assert Settings().generation.root_pose == "w-31"
    monkeypatch.setenv("REWIND_GENERATION__FRAMES", "65")
    assert load_settings(None, use_file=False).generation.root_pose == "w-16"
    given = load_settings(None, use_file=False, generation={"frames": 33, "root_pose": "a-8"})
    assert given.generation.root_pose == "a-8"
