"""YUV to RGB: Data-Juicer's pinned conversion by default, the stream's tags
on request (docs/semantics.md, "Colour conversion").

Data-Juicer's PyAV (13.1) converts every YUV frame with BT.601, in the range
its pixel format implies; newer PyAV honours a BT.709 tag. The clips here are
encoded at test time with real colour tags (checked by re-opening them), in
saturated flat colours, where the two matrices differ by tens of levels.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from textsieve import testing
from textsieve.cli import main
from textsieve.errors import ConfigError
from textsieve.recipe import build_config
from textsieve.runtime.execute import execute
from textsieve.video.color import to_rgb
from textsieve.video.frames import sample_video

W, H, FPS, FRAMES = 64, 48, 10, 6
# flat stripes 16 px wide (chroma is subsampled by 2: a stripe's inside holds
# no interpolated chroma): red, green, blue, a skin tone. swscale's fixed-point
# tables land within 3 levels of the textbook; the two matrices differ by 20+
STRIPES = [(230, 20, 20), (20, 200, 40), (30, 40, 220), (200, 150, 120)]
# (name, AVColorRange): limited (MPEG) and full (JPEG; H.264 decodes it as yuvj420p)
RANGES = {"limited": 1, "full": 2}


def encode_bt709(path: Path, color_range: int) -> Path:
    """A BT.709-tagged 8-bit H.264 clip: matrix, primaries and transfer all
    BT.709 (1), in ``color_range``."""
    image = np.zeros((H, W, 3), np.uint8)
    for i, colour in enumerate(STRIPES):
        image[:, 16 * i:16 * (i + 1)] = colour
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        cc = stream.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, color_range
        cc.options = {"crf": "0"}  # lossless: the stripes stay flat
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module", params=sorted(RANGES))
def clip(request, tmp_path_factory) -> tuple[Path, str]:
    path = encode_bt709(tmp_path_factory.mktemp("color") / f"bt709_{request.param}.mp4", RANGES[request.param])
    with av.open(str(path)) as container:  # the tags are really in the stream
        frame = next(container.decode(video=0))
        assert (int(frame.colorspace), int(frame.color_primaries), int(frame.color_trc)) == (1, 1, 1)
        assert int(frame.color_range) == RANGES[request.param]
    return path, request.param


def decoded(path: Path) -> dict[float, av.VideoFrame]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {float(f.pts * stream.time_base): f for f in container.decode(stream)}


def ycbcr_to_rgb(y: float, cb: float, cr: float, kr: float, kb: float, full: bool) -> np.ndarray:
    """The textbook conversion (ITU-R BT.601 / BT.709), written out here so
    that the expected colours do not come from swscale."""
    if full:
        yy, pb, pr = y / 255, (cb - 128) / 255, (cr - 128) / 255
    else:
        yy, pb, pr = (y - 16) / 219, (cb - 128) / 224, (cr - 128) / 224
    kg = 1 - kr - kb
    r = yy + 2 * (1 - kr) * pr
    b = yy + 2 * (1 - kb) * pb
    g = (yy - kr * r - kb * b) / kg
    return np.clip(np.array([r, g, b]) * 255, 0, 255)


BT601, BT709 = (0.299, 0.114), (0.2126, 0.0722)


def stripe_centres(image: np.ndarray) -> np.ndarray:
    return np.array([image[H // 2, 16 * i + 8].astype(float) for i in range(len(STRIPES))])


def expected_centres(frame: av.VideoFrame, matrix: tuple[float, float], full: bool) -> np.ndarray:
    yuv = frame.reformat(format="yuv444p").to_ndarray()  # planes, 3 x H x W (pixel format only: no colour maths)
    return np.array([ycbcr_to_rgb(*yuv[:, H // 2, 16 * i + 8].astype(float), *matrix, full)
                     for i in range(len(STRIPES))])


def test_default_frames_are_the_explicit_bt601_conversion_bit_for_bit(clip):
    path, kind = clip
    sampled = sample_video(str(path), 3)
    frames = decoded(path)
    assert len(sampled.images) == 3
    for t, image in zip(sampled.times, sampled.images):
        frame = frames[t]
        # what PyAV 13.1's to_image() does, asked for explicitly: BT.601, the
        # range the pixel format implies (H.264 full range decodes as yuvj420p)
        assert frame.format.name == ("yuvj420p" if kind == "full" else "yuv420p")
        explicit = frame.to_ndarray(format="rgb24", src_colorspace="ITU601",
                                    src_color_range="JPEG" if kind == "full" else "MPEG")
        assert np.array_equal(image, explicit)
        # and it is BT.601 by the textbook, not BT.709
        assert np.abs(stripe_centres(image) - expected_centres(frame, BT601, kind == "full")).max() <= 3


def test_tagged_honours_the_bt709_tag_and_differs_from_the_default(clip):
    path, kind = clip
    default = sample_video(str(path), 3)
    tagged = sample_video(str(path), 3, color_conversion="tagged")
    frames = decoded(path)
    assert tagged.times == default.times  # the same frames, converted otherwise
    for t, image, dj in zip(tagged.times, tagged.images, default.images):
        frame = frames[t]
        assert np.abs(stripe_centres(image) - expected_centres(frame, BT709, kind == "full")).max() <= 3
        # the two conversions differ where it shows (saturated colours), so
        # a default that honoured the tag would fail the test above
        assert np.abs(image.astype(int) - dj).max() > 20
        if int(av.__version__.split(".")[0]) >= 17:
            # PyAV 17+ hands the frame's tags to swscale itself: `tagged` is that
            assert np.array_equal(image, frame.to_ndarray(format="rgb24"))


def test_scaled_frames_use_the_same_conversion(clip):
    """max_side scales in the same swscale call: the matrix must not change with it."""
    path, kind = clip
    frames = decoded(path)
    frame = next(iter(frames.values()))
    small = to_rgb(frame, (32, 24))
    assert small.shape == (24, 32, 3)
    centres = np.array([small[12, 8 * i + 4].astype(float) for i in range(len(STRIPES))])
    assert np.abs(centres - expected_centres(frame, BT601, kind == "full")).max() <= 3


def test_an_unknown_conversion_is_refused_by_the_function(clip):
    frame = next(iter(decoded(clip[0]).values()))
    with pytest.raises(ValueError, match="unknown color_conversion 'bt709'; use one of dj, tagged"):
        to_rgb(frame, conversion="bt709")


# ---- through the executors ---------------------------------------------------------

@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("colordata")
    encode_bt709(folder / "bt709.mp4", RANGES["limited"])
    path = folder / "data.jsonl"
    path.write_text(json.dumps({"id": 0, "videos": ["bt709.mp4"]}) + "\n")
    return path


def red_ratio(path: Path, conversion: str) -> float:
    """The ``red`` test detector's ratio, computed here from the frames."""
    images = sample_video(str(path), 3, color_conversion=conversion).images
    return float(np.mean([image[:, :, 0].mean() / 255.0 for image in images]))


@pytest.mark.parametrize("executor", ["serial", "local", "ray"])
def test_the_setting_reaches_the_decoders_on_every_executor(executor, dataset, tmp_path, request):
    """The ``red`` detector's ratio is the frames' mean red level, so the
    stats show which conversion the decoders applied, wherever they ran."""
    if executor == "ray":
        request.getfixturevalue("ray_local")
    video = dataset.parent / "bt709.mp4"
    got = {}
    for conversion in ("dj", "tagged"):
        config = testing.with_detector(build_config(overrides={
            "dataset_path": str(dataset), "export_path": str(tmp_path / conversion), "executor": executor,
            "filter.color_conversion": conversion}).config, "red")
        execute(config)
        stats = [json.loads(line) for line in (tmp_path / conversion / "stats.jsonl").read_text().splitlines()]
        got[conversion] = stats[0]["video_ocr_area_ratio"][0]
        assert got[conversion] == pytest.approx(red_ratio(video, conversion), abs=1e-9)
    assert abs(got["dj"] - got["tagged"]) > 1e-3


# ---- the setting as users give it ------------------------------------------------------

def test_the_flag_is_accepted_and_recorded(dataset, tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--dataset", str(dataset), "--export", str(out), "--executor", "serial",
                 "--color-conversion", "tagged"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["filter"]["color_conversion"] == "tagged"


def test_an_invalid_flag_value_exits_2(dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["run", "--dataset", str(dataset), "--export", str(tmp_path / "o"), "--color-conversion", "bt709"])
    assert done.value.code == 2
    assert "invalid choice: 'bt709'" in capsys.readouterr().err


RECIPE = """dataset_path: {dataset}
export_path: {export}
process:
  - video_ocr_area_ratio_filter:
      max_area_ratio: 0.5
      color_conversion: {value}
"""


def test_the_recipe_key_is_read_and_defaults_to_dj(dataset, tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(dataset=dataset, export=tmp_path / "o", value="tagged"))
    assert build_config(path).config.filter.color_conversion == "tagged"
    assert build_config(overrides={"dataset_path": "d", "export_path": "o"}).config.filter.color_conversion == "dj"


def test_an_invalid_recipe_value_names_the_line_and_exits_2(dataset, tmp_path, capsys):
    path = tmp_path / "recipe.yaml"
    path.write_text(RECIPE.format(dataset=dataset, export=tmp_path / "o", value="bt709"))
    with pytest.raises(ConfigError, match=r"recipe.yaml:6: .*color_conversion"):
        build_config(path)
    assert main(["run", str(path)]) == 2
    assert "color_conversion" in capsys.readouterr().err
