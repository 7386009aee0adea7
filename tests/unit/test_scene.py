"""Offline scene analysis (and the no-audio soundscape): deterministic, well-shaped, plausible."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from skimage import data

from orchestrator.media import encode_png
from orchestrator.scene import AnchorPoint, OfflineSceneAnalyzer, SceneAnalyzer, SceneInfo
from orchestrator.soundscape import NoSoundscape, Soundscape


def landscape() -> np.ndarray:
    """Blue sky over a green field with a pale cloud: the textbook outdoor photo."""
    img = np.zeros((300, 400, 3), np.uint8)
    img[:120] = (90, 150, 230)
    img[120:] = (60, 140, 50)
    img[40:70, 250:330] = (245, 245, 240)
    return img


PHOTOS = {
    "astronaut": data.astronaut(),
    "chelsea": data.chelsea(),
    "coffee": data.coffee(),
    "landscape": landscape(),
    "night": np.full((120, 160, 3), 12, np.uint8),
    "grey": np.full((64, 64, 3), 128, np.uint8),
    "tiny": np.full((16, 16, 3), 200, np.uint8),
    "panorama": np.tile(data.chelsea()[:16, :], (1, 4, 1)),
}
PNGS = {name: encode_png(arr) for name, arr in PHOTOS.items()}
analyzer = OfflineSceneAnalyzer()


async def test_is_deterministic() -> None:
    for png in PNGS.values():
        first = await analyzer.analyze(png, "A day out")
        again = await OfflineSceneAnalyzer().analyze(png, "A day out")
        assert first == again


@pytest.mark.parametrize("name", sorted(PHOTOS))
async def test_shape_matches_the_api_contract(name: str) -> None:
    scene = await analyzer.analyze(PNGS[name], None)
    assert scene.description and scene.mood
    assert 2 <= len(scene.anchor_points) <= 4
    for point in scene.anchor_points:
        assert point.label
        assert 0.0 <= point.x <= 1.0 and 0.0 <= point.y <= 1.0
    assert len({p.label for p in scene.anchor_points}) == len(scene.anchor_points)
    assert scene.sound_keywords
    assert len(set(scene.sound_keywords)) == len(scene.sound_keywords)
    body = scene.model_dump(mode="json")
    assert set(body) == {"description", "mood", "anchor_points", "sound_keywords"}
    assert set(body["anchor_points"][0]) == {"label", "x", "y"}
    assert SceneInfo.model_validate(body) == scene


async def test_different_photos_get_different_descriptions() -> None:
    names = ["astronaut", "chelsea", "coffee", "landscape", "night"]
    descriptions = {(await analyzer.analyze(PNGS[n], None)).description for n in names}
    assert len(descriptions) == len(names)


async def test_outdoor_features_drive_description_and_sounds() -> None:
    scene = await analyzer.analyze(PNGS["landscape"], None)
    assert "outdoor" in scene.description
    assert "sky" in scene.description and "foliage" in scene.description
    assert {"birdsong", "gentle wind"} <= set(scene.sound_keywords)
    assert any("sky?" in p.label for p in scene.anchor_points)


async def test_dark_photo_reads_as_night() -> None:
    scene = await analyzer.analyze(PNGS["night"], None)
    assert "night" in scene.description
    assert "crickets" in scene.sound_keywords


async def test_close_up_reads_as_indoor() -> None:
    scene = await analyzer.analyze(PNGS["chelsea"], None)
    assert "indoors" in scene.description
    assert "room tone" in scene.sound_keywords


async def test_anchor_lands_on_the_salient_spot() -> None:
    img = np.zeros((256, 256, 3), np.uint8)
    img[40:80, 180:220] = (255, 220, 40)  # one bright patch, upper right
    scene = await analyzer.analyze(encode_png(img), None)
    top = scene.anchor_points[0]
    assert abs(top.x - 200 / 256) < 0.1 and abs(top.y - 60 / 256) < 0.1


async def test_prompt_enriches_description_sounds_and_mood() -> None:
    png = PNGS["landscape"]
    plain = await analyzer.analyze(png, None)
    told = await analyzer.analyze(png, "  our summer at the   beaches of Crete ")
    assert told.description.startswith("Our summer at the beaches of Crete. ")
    assert told.description.endswith(plain.description)
    assert told.sound_keywords[:2] == ["ocean waves", "seagulls"]
    assert "ocean waves" not in plain.sound_keywords
    assert told.mood.startswith("peaceful")
    assert told.anchor_points == plain.anchor_points


async def test_blank_prompt_is_no_prompt() -> None:
    png = PNGS["coffee"]
    assert await analyzer.analyze(png, "   ") == await analyzer.analyze(png, None)


def test_models_validate_ranges() -> None:
    with pytest.raises(ValidationError):
        AnchorPoint(label="sun", x=1.5, y=0.2)
    with pytest.raises(ValidationError):
        SceneInfo(description="", mood="calm", anchor_points=[], sound_keywords=[])


async def test_health_and_protocols() -> None:
    scene_analyzer: SceneAnalyzer = analyzer
    assert scene_analyzer.name == "offline"
    assert analyzer.health()["status"] == "ok"

    soundscape: Soundscape = NoSoundscape()
    assert soundscape.name == "none"
    assert await soundscape.generate(await analyzer.analyze(PNGS["coffee"], None)) is None
    health = soundscape.health()
    assert (health["status"], health["backend"]) == ("not configured", "none")
    assert "audio_base64 will be null" in str(health["detail"])
