"""Gallery thumbnails: a judged video's sampled frames, decoded again at the
saved times, with the boxes the detector found drawn on them, as small JPEG
data URIs (the page must fetch nothing)."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ..errors import VideoError
from ..video.frames import frames_at, scaled_size
from .scan import Candidate

THUMB_SIDE = 320  # long side of a thumbnail, pixels
FRAMES_PER_CARD = 3
JPEG_QUALITY = 80
BOX_COLOR = (255, 214, 10)


@dataclass(frozen=True)
class Thumb:
    time: float
    ratio: float
    boxes: int | None  # boxes drawn; None: the run did not save them (save_boxes: false)
    data_uri: str


@dataclass(frozen=True)
class Card:
    candidate: Candidate
    thumbs: list[Thumb]
    problem: str | None  # why there are no thumbnails (missing or changed video)


def shown_frames(count: int) -> list[int]:
    """Which of a video's sampled frames a card shows: all of the first few,
    else first, middle and last."""
    if count <= FRAMES_PER_CARD:
        return list(range(count))
    return sorted({0, count // 2, count - 1})


def render_card(candidate: Candidate, run_max_side: int | None, color_conversion: str = "dj") -> Card:
    """Decode and draw one video's card; a video that cannot be read gives a
    card with the reason instead of thumbnails."""
    video = candidate.video
    times, ratios = video.get("frame_times") or [], video.get("frame_ratios") or []
    boxes = video.get("frame_boxes")
    if not times:
        return Card(candidate, [], f"{video['video']}: stats.jsonl holds no frame times for it")
    picked = shown_frames(len(times))
    width, height = int(video["width"]), int(video["height"])
    thumb_w, thumb_h = scaled_size(width, height, THUMB_SIDE)
    try:
        # the run's colour conversion, so the thumbnail shows what the detector saw
        images = frames_at(video["video"], [times[i] for i in picked], THUMB_SIDE, color_conversion=color_conversion)
    except VideoError as exc:
        return Card(candidate, [], str(exc))
    if any(image.shape[:2] != (thumb_h, thumb_w) for image in images):
        return Card(candidate, [], f"{video['video']}: its frame size is not the {width}x{height} the run saw; "
                                   "the file changed since the run")
    # boxes are in the pixels of the frame the detector saw
    det_w, det_h = scaled_size(width, height, run_max_side)
    scale = (thumb_w / det_w, thumb_h / det_h)
    thumbs = []
    for image, i in zip(images, picked):
        frame_boxes = boxes[i] if boxes is not None and i < len(boxes) else None
        thumbs.append(Thumb(times[i], ratios[i] if i < len(ratios) else float("nan"),
                            None if frame_boxes is None else len(frame_boxes),
                            _jpeg_uri(_draw(image, frame_boxes or [], scale))))
    return Card(candidate, thumbs, None)


def _draw(image: np.ndarray, polygons: list[list[int]], scale: tuple[float, float]) -> Image.Image:
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    for poly in polygons:
        points = [(poly[j] * scale[0], poly[j + 1] * scale[1]) for j in range(0, len(poly) - 1, 2)]
        if len(points) >= 2:
            draw.polygon(points, outline=BOX_COLOR, width=2)
    return picture


def _jpeg_uri(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    # 4:4:4: chroma at full resolution, or thin yellow box lines fade on odd rows
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
