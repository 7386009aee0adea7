"""The parts of the HY-WorldPlay adapter that run without a GPU, on real files."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from gpu.upstream_signatures import SNAPSHOT
from gpu.weights import BASE_PATHS, missing_weights
from gpu.worldplay import (
    OFFLOAD,
    WorldPlayPipeline,
    infer_args,
    is_mmap_failure,
    load_with_local_copy,
    single_process_env,
    weight_paths,
)
from orchestrator.core.variants import VARIANTS, variant


def test_single_process_env_sets_only_what_torchrun_would() -> None:
    env: dict[str, str] = {"MASTER_ADDR": "10.0.0.2"}
    added = single_process_env(env)
    assert env["RANK"] == env["LOCAL_RANK"] == "0" and env["WORLD_SIZE"] == "1"
    assert env["MASTER_ADDR"] == "10.0.0.2" and "MASTER_ADDR" not in added  # kept
    assert 0 < int(env["MASTER_PORT"]) < 65536
    assert single_process_env(env) == {}  # idempotent


def test_infer_args_are_upstream_cli_defaults() -> None:
    spec = json.loads(SNAPSHOT.read_text())["functions"]["initialize_infer_state"]
    args = vars(infer_args())
    assert set(spec["args_attributes"]) <= set(args)
    assert args["use_vae_parallel"] is False and args["use_fp8_gemm"] is False
    # upstream's 72 GB on one GPU is measured with its CLI default --offloading true
    assert OFFLOAD == {"enable_offloading": True, "enable_group_offloading": False}


def test_mmap_failure_is_recognised_through_re_raises() -> None:
    inner = OSError(errno.ENODEV, "No such device")
    try:
        try:
            raise inner
        except OSError as exc:
            raise OSError("Unable to load weights from checkpoint file") from exc
    except OSError as outer:
        assert is_mmap_failure(outer)
    assert is_mmap_failure(OSError("No such device (os error 19)"))  # safetensors' Rust text
    assert not is_mmap_failure(FileNotFoundError(errno.ENOENT, "missing"))


def _tree(root: Path) -> tuple[Path, Path]:
    base, actions = root / "hunyuan", root / "worldplay"
    for rel in BASE_PATHS:
        path = base / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if "." in path.name:
            path.write_text("{}")
        else:
            path.mkdir(exist_ok=True)
    for v in VARIANTS.values():
        if v.checkpoint:
            (actions / v.checkpoint).parent.mkdir(parents=True, exist_ok=True)
            (actions / v.checkpoint).write_bytes(b"weights")
    return base, actions


def test_weights_fallback_copies_to_local_disk_on_enodev(tmp_path: Path) -> None:
    base, actions = _tree(tmp_path / "volume")
    ckpt = str(actions / "ar_model" / "diffusion_pytorch_model.safetensors")
    seen: list[tuple[str, str]] = []

    def load(b: str, c: str) -> str:
        seen.append((b, c))
        if str(tmp_path / "volume") in b:  # the Volume cannot be memory-mapped
            raise OSError("Unable to load weights") from OSError(errno.ENODEV, "No such device")
        return Path(c).read_text()

    loaded, copied = load_with_local_copy(load, str(base), ckpt, str(tmp_path / "local"))
    assert (loaded, copied) == ("weights", True)
    assert seen[1][0] == str(tmp_path / "local" / "base")
    assert (tmp_path / "local" / "base" / "text_encoder" / "llm" / "config.json").exists()

    def broken(b: str, c: str) -> str:
        raise OSError(errno.ENOENT, "gone")

    with pytest.raises(OSError, match="gone"):  # other errors are not swallowed
        load_with_local_copy(broken, str(base), ckpt, str(tmp_path / "other"))


def test_weight_paths_point_at_the_safetensors_file(tmp_path: Path) -> None:
    base, actions = _tree(tmp_path)
    env = {"WORLDPLAY_MODEL_PATH": str(base), "WORLDPLAY_ACTION_ROOT": str(actions)}
    got_base, ckpt = weight_paths(variant("worldplay-ar-distilled"), env)
    assert got_base == str(base) and os.path.isfile(ckpt)
    assert ckpt.endswith("ar_distilled_action_model/diffusion_pytorch_model.safetensors")
    os.remove(ckpt)
    with pytest.raises(FileNotFoundError, match="download_weights"):
        weight_paths(variant("worldplay-ar-distilled"), env)


def test_missing_weights_names_each_gap(tmp_path: Path) -> None:
    base, actions = _tree(tmp_path)
    assert missing_weights(str(base), str(actions)) == []
    siglip = base / "vision_encoder" / "siglip" / "image_encoder"
    siglip.rmdir()  # what download_models.py leaves when the gated download fails
    assert missing_weights(str(base), str(actions)) == [str(siglip)]


def test_pipeline_refuses_the_cpu_model() -> None:
    with pytest.raises(ValueError, match="not a HY-WorldPlay variant"):
        WorldPlayPipeline("local-cpu")
