"""Backend selection: config validation, fail-fast credential checks, ``rewind serve`` exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import pytest
from pydantic import ValidationError

from orchestrator.backends import build_scene, build_soundscape, check_backends
from orchestrator.config import ConfigError, Settings, load_settings
from orchestrator.scene import OfflineSceneAnalyzer
from orchestrator.soundscape import NoSoundscape

SECRETS = (
    "MODAL_TOKEN_ID",
    "MODAL_TOKEN_SECRET",
    "MODAL_CONFIG_PATH",
    "MODAL_PROFILE",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "ANTHROPIC_API_KEY",
    "ELEVENLABS_API_KEY",
)


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credential in the environment, and no ~/.modal.toml profile loaded by modal."""
    for name in SECRETS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("modal.config._user_config", {})


def settings(**sections: dict[str, object]) -> Settings:
    return load_settings(None, use_file=False, **sections)


def test_defaults_are_the_embedded_backends() -> None:
    s = Settings()
    assert (s.gpu.backend, s.storage.backend) == ("local", "local")
    assert (s.scene.backend, s.soundscape.backend) == ("offline", "none")


def test_backend_names_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "rewind.toml"
    path.write_text(
        '[gpu]\nbackend = "modal"\nmodal_app = "my-app"\npoll_s = 5.0\n'
        '[storage]\nbackend = "supabase"\nsigned_url_ttl_s = 600\n'
        '[scene]\nbackend = "claude"\nmodel = "claude-sonnet-4-5"\n'
        '[soundscape]\nbackend = "elevenlabs"\nduration_s = 8.0\n'
    )
    s = load_settings(path)
    assert (s.gpu.backend, s.gpu.modal_app, s.gpu.poll_s) == ("modal", "my-app", 5.0)
    assert (s.storage.backend, s.storage.signed_url_ttl_s) == ("supabase", 600)
    assert (s.scene.backend, s.scene.model) == ("claude", "claude-sonnet-4-5")
    assert (s.soundscape.backend, s.soundscape.duration_s) == ("elevenlabs", 8.0)
    for section, value in (
        ("gpu", "runpod"),
        ("storage", "s3"),
        ("scene", "gpt"),
        ("soundscape", "local"),
    ):
        path.write_text(f'[{section}]\nbackend = "{value}"\n')
        with pytest.raises(ValidationError, match=f"{section}.backend"):
            load_settings(path)
    path.write_text("[soundscape]\nduration_s = 45.0\n")  # the API allows 0.5 .. 30 s
    with pytest.raises(ValidationError, match="duration_s"):
        load_settings(path)
    path.write_text("[gpu]\nsubmit_attempts = 0\n")
    with pytest.raises(ValidationError, match="submit_attempts"):
        load_settings(path)


def test_environment_selects_a_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REWIND_GPU__BACKEND", "modal")
    monkeypatch.setenv("REWIND_SCENE__BACKEND", "claude")
    s = load_settings(None, use_file=False)
    assert s.gpu.backend == "modal" and s.scene.backend == "claude"


def test_secrets_are_not_configuration_keys(tmp_path: Path) -> None:
    path = tmp_path / "rewind.toml"
    path.write_text('[scene]\napi_key = "sk-ant-SECRET"\n')
    with pytest.raises(ValidationError, match="api_key"):
        load_settings(path)


def test_local_backends_need_no_credentials(no_secrets: None) -> None:
    check_backends(Settings())  # no error


def test_modal_without_token_fails_fast_naming_what_is_missing(
    no_secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(gpu={"backend": "modal"})
    with pytest.raises(ConfigError) as info:
        check_backends(s)
    message = str(info.value)
    assert isinstance(info.value, RuntimeError)
    assert "MODAL_TOKEN_ID and MODAL_TOKEN_SECRET" in message and "modal token new" in message
    assert "\n" not in message
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    with pytest.raises(ConfigError, match="MODAL_TOKEN_SECRET is not set") as info:
        check_backends(s)
    assert "ak-test" not in str(info.value)
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-SECRET")
    check_backends(s)


def test_modal_with_a_worldplay_model_checks_its_upstream_rules(
    no_secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODAL_TOKEN_ID", "ak-test")
    monkeypatch.setenv("MODAL_TOKEN_SECRET", "as-SECRET")
    wrong = settings(gpu={"backend": "modal"}, generation={"model": "worldplay-ar-distilled"})
    with pytest.raises(ConfigError, match="runs at 832 x 480"):  # the 854 default
        check_backends(wrong)
    bi = {"model": "worldplay-bi", "width": 832, "frames": 97}  # 25 latents
    with pytest.raises(ConfigError, match="divisible by 16"):
        check_backends(settings(gpu={"backend": "modal"}, generation=bi))
    good = {"model": "worldplay-ar-distilled", "width": 832, "steps": 4}
    check_backends(settings(gpu={"backend": "modal"}, generation=good))


def test_supabase_without_url_or_key_fails_fast(
    no_secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = settings(storage={"backend": "supabase"})
    with pytest.raises(ConfigError, match="SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY are not"):
        check_backends(s)
    monkeypatch.setenv("SUPABASE_URL", "https://abc.supabase.co")
    with pytest.raises(ConfigError, match="SUPABASE_SERVICE_ROLE_KEY is not set"):
        check_backends(s)
    monkeypatch.setenv("SUPABASE_SERVICE_ROLE_KEY", "service-role-SECRET")
    check_backends(s)
    monkeypatch.setenv("SUPABASE_URL", "abc.supabase.co")
    with pytest.raises(ConfigError, match="must start with http") as info:
        check_backends(s)
    assert "service-role-SECRET" not in str(info.value)


def test_both_missing_make_one_message(no_secrets: None) -> None:
    s = settings(gpu={"backend": "modal"}, storage={"backend": "supabase"})
    with pytest.raises(ConfigError) as info:
        check_backends(s)
    message = str(info.value)
    assert "MODAL_TOKEN_ID" in message and "SUPABASE_URL" in message and "\n" not in message


async def test_integrations_without_keys_are_built_not_configured(no_secrets: None) -> None:
    # No fail-fast and no silent fallback to the embedded parts: "not configured", with why.
    s = settings(scene={"backend": "claude"}, soundscape={"backend": "elevenlabs"})
    check_backends(s)
    scene, sound = build_scene(s), build_soundscape(s)
    assert scene.name == "claude" and sound.name == "elevenlabs"
    assert scene.health()["status"] == "not configured"
    assert "ANTHROPIC_API_KEY" in str(scene.health()["detail"])
    assert sound.health()["status"] == "not configured"
    assert "ELEVENLABS_API_KEY" in str(sound.health()["detail"])
    assert isinstance(build_scene(Settings()), OfflineSceneAnalyzer)
    assert isinstance(build_soundscape(Settings()), NoSoundscape)


async def test_configured_integrations_take_their_settings(
    no_secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-SECRET")
    monkeypatch.setenv("ELEVENLABS_API_KEY", "xi-SECRET")
    s = settings(
        scene={"backend": "claude", "model": "claude-x", "price_per_mtok_input": 3.0},
        soundscape={"backend": "elevenlabs", "duration_s": 4.0, "price_per_second": 0.01},
    )
    scene, sound = build_scene(s), build_soundscape(s)
    health = scene.health()
    assert health["status"] == "ok" and health["model"] == "claude-x"
    assert "SECRET" not in str(health) and "SECRET" not in str(sound.health())
    assert sound.health()["duration_s"] == 4.0
    for part in (scene, sound):
        await cast(Any, part).close()


def test_rewind_serve_without_modal_token_exits_with_one_line(tmp_path: Path) -> None:
    # HOME is empty, so modal finds no ~/.modal.toml; no other REWIND_* setting leaks in.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SECRETS and not k.startswith("REWIND_") and k != "DATABASE_URL"
    }
    env |= {"HOME": str(tmp_path), "REWIND_GPU__BACKEND": "modal"}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "serve"],
        cwd=tmp_path,  # no rewind.toml here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.monotonic() - started
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "MODAL_TOKEN_ID" in lines[0] and "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert elapsed < 15  # fails before opening the database or binding the port
    assert not (tmp_path / ".rewind" / "pg").exists()
