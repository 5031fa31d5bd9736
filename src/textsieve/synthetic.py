"""Videos with drawn text of known geometry, encoded with PyAV.

Used by ``textsieve demo``, the tests and the benchmarks, so that every run
makes its own data: nothing is downloaded and no video is checked in.
Every frame differs from its neighbours (a moving square and a changing
background), so frame-identity tests can tell frames apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont


@dataclass(frozen=True)
class TextBlock:
    """A line of text drawn at (x, y) (top-left of its ink box) with a font
    of ``size`` pixels; ``dx`` moves it that many pixels per frame."""

    text: str
    x: int
    y: int
    size: int = 24
    color: tuple[int, int, int] = (255, 255, 255)
    dx: int = 0


@dataclass(frozen=True)
class VideoSpec:
    width: int = 320
    height: int = 240
    fps: Fraction = Fraction(25)
    frames: int = 50
    gop: int = 25  # keyframe interval in frames
    bframes: int = 2
    codec: str = "libx264"
    container: str = "mp4"  # mp4 | mkv | webm | mov | gif (gif: any size, libx264 needs even sides)
    faststart: bool = False  # mp4: put the index (moov) before the data
    blocks: tuple[TextBlock, ...] = field(default_factory=tuple)
    background: tuple[int, int, int] = (30, 60, 90)
    # "busy": a photo-like scene (smooth colour fields, shapes, fine stripes)
    # under the text, where detectors find false text and miss real text
    scene: str = "flat"
    seed: int = 0


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def block_box(block: TextBlock, frame_index: int = 0) -> tuple[int, int, int, int]:
    """Ink box (x0, y0, x1, y1) of a block on a frame."""
    left, top, right, bottom = _font(block.size).getbbox(block.text)
    x = block.x + block.dx * frame_index
    return (x, block.y, x + right - left, block.y + bottom - top)


def drawn_text_ratio(spec: VideoSpec, frame_index: int = 0) -> float:
    """Share of the frame covered by the union of the blocks' ink boxes,
    clipped to the frame: the ground truth a detector's ratio should track."""
    mask = np.zeros((spec.height, spec.width), dtype=bool)
    for block in spec.blocks:
        x0, y0, x1, y1 = block_box(block, frame_index)
        mask[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)] = True
    return float(mask.mean())


@lru_cache(maxsize=4)
def _busy_scene(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(max(2, height // 60), max(2, width // 60), 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    unit = max(4, min(width, height) // 12)
    for _ in range(12):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.rectangle((x, y, x + unit * int(rng.integers(1, 4)), y + unit), fill=colour)
        elif shape == 1:
            draw.ellipse((x, y, x + unit * 2, y + unit * 2), outline=colour, width=max(1, unit // 8))
        else:
            draw.line((x, y, x + unit * 3, y + int(rng.integers(-unit, unit))), fill=colour, width=max(1, unit // 10))
    # fine vertical stripes (fences, foliage, railings): stroke-like texture
    x0, y0 = int(rng.integers(0, width // 2)), int(rng.integers(0, height // 2))
    for k in range(0, unit * 3, max(2, unit // 6)):
        draw.line((x0 + k, y0, x0 + k, y0 + unit * 2), fill=(230, 230, 230), width=1)
    return image


def render_frame(spec: VideoSpec, index: int) -> np.ndarray:
    """RGB frame ``index`` of the video described by ``spec``."""
    shade = int(20 * math.sin(index / 3.0))
    bg = tuple(max(0, min(255, c + shade)) for c in spec.background)
    if spec.scene == "busy":
        image = _busy_scene(spec.width, spec.height, spec.seed).copy()
    else:
        image = Image.new("RGB", (spec.width, spec.height), bg)
    draw = ImageDraw.Draw(image)
    # a marker that moves every frame, away from typical text areas
    side = max(4, spec.height // 24)
    mx = (index * side) % max(1, spec.width - side)
    draw.rectangle((mx, 0, mx + side, side), fill=(200, 40, 40))
    for block in spec.blocks:
        left, top, _, _ = _font(block.size).getbbox(block.text)
        x = block.x + block.dx * index
        draw.text((x - left, block.y - top), block.text, fill=block.color, font=_font(block.size))
    return np.asarray(image)


def write_video(path: str | Path, spec: VideoSpec) -> Path:
    """Encode ``spec`` to ``path`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if spec.faststart and spec.container in ("mp4", "mov") else {}
    muxer = {"mkv": "matroska"}.get(spec.container, spec.container)
    gif = spec.container == "gif"
    with av.open(str(path), mode="w", format=muxer, options=options) as out:
        stream = out.add_stream("gif" if gif else spec.codec, rate=spec.fps)
        stream.width, stream.height = spec.width, spec.height
        stream.pix_fmt = "rgb8" if gif else "yuv420p"
        if gif:
            pass
        elif spec.codec == "libx264":
            stream.options = {
                "preset": "ultrafast" if spec.width * spec.height > 2_000_000 else "veryfast",
                "x264-params": f"keyint={spec.gop}:min-keyint={spec.gop}:scenecut=0:bframes={spec.bframes}",
            }
        else:
            stream.codec_context.gop_size = spec.gop
        for i in range(spec.frames):
            frame = av.VideoFrame.from_ndarray(render_frame(spec, i), format="rgb24")
            if gif:
                frame = frame.reformat(format="rgb8")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def write_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    """An AAC audio file in an MP4 container: a 'video' with no video stream."""
    path = Path(path)
    rate = 22050
    with av.open(str(path), mode="w", format="mp4") as out:
        stream = out.add_stream("aac", rate=rate)
        samples = int(rate * seconds)
        tone = (0.2 * np.sin(np.arange(samples) * 2 * np.pi * 440 / rate)).astype(np.float32)
        chunk = 1024
        for start in range(0, samples, chunk):
            data = tone[start : start + chunk].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# The demo's four kinds of clip, at a size CRAFT handles fast on a CPU.
def demo_specs(width: int = 320, height: int = 240) -> dict[str, VideoSpec]:
    """No text, a small caption, a subtitle block, and full-screen text."""
    base = dict(width=width, height=height, fps=Fraction(25), frames=50, gop=25)
    full: list[TextBlock] = []
    line_h = height // 8
    for row in range(6):
        full.append(TextBlock(f"Slide line {row + 1}: text", 10, 12 + row * line_h, size=max(14, line_h - 10)))
    return {
        "no_text": VideoSpec(**base),
        "caption": VideoSpec(**base, blocks=(TextBlock("@channel", width - 110, 12, size=18),)),
        "subtitles": VideoSpec(
            **base,
            blocks=(
                TextBlock("The quick brown fox", 30, height - 70, size=24),
                TextBlock("jumps over the dog", 36, height - 38, size=24),
            ),
        ),
        "slides": VideoSpec(**base, blocks=tuple(full)),
    }


def write_dataset(folder: str | Path, specs: dict[str, VideoSpec], extra_rows: Sequence[dict] = ()) -> Path:
    """Write each spec as ``<name>.mp4`` in ``folder`` and a ``dataset.jsonl``
    with one sample per video (relative paths), plus ``extra_rows``."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, spec in specs.items():
        write_video(folder / f"{name}.{spec.container}", spec)
        rows.append({"text": name, "videos": [f"{name}.{spec.container}"]})
    rows.extend(extra_rows)
    dataset = folder / "dataset.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dataset
