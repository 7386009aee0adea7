"""The README as a newcomer reads it: its "Try it" commands run against a real ``rewind serve``,
and it names nothing outside the repository (a clone has no ``../shared``)."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.serverproc import Server

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DEFAULT_PHOTO = "PHOTO=orchestrator/assets/astronaut.jpg"


def _try_it_block() -> str:
    text = README.read_text()
    after = text[text.index("Try it (a real photo in") :]
    match = re.search(r"```bash\n(.*?)```", after, re.S)
    assert match is not None, "README has no bash block after 'Try it'"
    return match.group(1)


def _phone_photo(path: Path) -> int:
    """A 12-megapixel JPEG (4032x3024, as a phone takes) from a real photo; its size in bytes."""
    import skimage.data

    img = Image.fromarray(skimage.data.chelsea()).convert("RGB").resize((4032, 3024))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    path.write_bytes(buf.getvalue())
    return len(buf.getvalue())


def test_readme_links_stay_inside_the_repo() -> None:
    text = README.read_text()
    assert "../" not in text, "a clone has nothing above the repo"
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if target.startswith(("http://", "https://")):
            continue
        assert (ROOT / target).exists(), f"README links {target}, which the repo does not have"
    for path in re.findall(r"`((?:orchestrator|gpu|policies|docs|benchmarks)/[\w./-]+)`", text):
        if path.startswith("benchmarks/results"):  # what the benchmarks write
            continue
        assert (ROOT / path).exists(), f"README names {path}, which the repo does not have"


def test_try_it_commands_run_with_a_phone_photo(database_url: str, tmp_path: Path) -> None:
    if shutil.which("jq") is None or shutil.which("curl") is None:
        pytest.skip("the README's commands need curl and jq (.ci/run installs them)")
    server = Server(database_url, tmp_path, tmp_path / "serve.log")
    try:
        size = _phone_photo(tmp_path / "phone.jpg")
        assert size > 200_000  # far over what one argv string may hold as base64 (128 KiB)
        block = _try_it_block()
        assert DEFAULT_PHOTO in block
        script = block.replace(DEFAULT_PHOTO, "PHOTO=phone.jpg").replace(
            "localhost:8000", f"127.0.0.1:{server.port}"
        )
        # POSIX sh (dash here): no bash-only syntax, so zsh on macOS runs it the same way.
        done = subprocess.run(
            ["sh", "-eu", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr + server.tail()
        assert "Argument list too long" not in done.stderr
        created = json.loads((tmp_path / "created.json").read_text())
        step = json.loads((tmp_path / "next.json").read_text())["chunk"]
        # The first jq prints the ids the second command needs.
        assert created["memory_id"] in done.stdout and created["chunk"]["chunk_id"] in done.stdout
        assert step["outcome"] in ("hit", "inflight", "miss") and step["chunk_id"] in done.stdout
        mp4 = (tmp_path / "next.mp4").read_bytes()
        assert mp4[4:8] == b"ftyp" and len(mp4) > 1000
    finally:
        server.stop()
