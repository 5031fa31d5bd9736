"""CRAFT through EasyOCR, detection only, on one explicit device.

The network is built here (``load_craft``) and loaded straight onto its one
device: EasyOCR's own GPU path wraps it in ``DataParallel`` over every
visible GPU, which is exactly the memory blow-up textsieve exists to avoid.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..errors import ConfigError
from .area import Detections
from .weights import CRAFT_FILE, find_craft_weights

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class CraftParams:
    """``easyocr.Reader.detect`` arguments; the defaults are Data-Juicer's
    (it calls ``detect`` with none)."""

    min_size: int = 20
    text_threshold: float = 0.7
    low_text: float = 0.4
    link_threshold: float = 0.4
    canvas_size: int = 2560
    mag_ratio: float = 1.0
    slope_ths: float = 0.1
    ycenter_ths: float = 0.5
    height_ths: float = 0.5
    width_ths: float = 0.5
    add_margin: float = 0.1


@lru_cache(maxsize=1)
def easyocr_languages() -> frozenset[str]:
    """EasyOCR's language codes, read from its config module alone so that
    validating a recipe does not import torch."""
    spec = importlib.util.find_spec("easyocr")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("EasyOCR is not installed: pip install easyocr")
    path = f"{list(spec.submodule_search_locations)[0]}/config.py"
    config_spec = importlib.util.spec_from_file_location("_easyocr_config", path)
    module = importlib.util.module_from_spec(config_spec)
    config_spec.loader.exec_module(module)
    return frozenset(module.all_lang_list)


def validate_languages(languages: Sequence[str]) -> list[str]:
    """Data-Juicer passes its languages to EasyOCR, which refuses unknown ones;
    CRAFT itself is language independent, so they change nothing else."""
    unknown = sorted(set(languages) - easyocr_languages())
    if unknown:
        raise ConfigError(f"languages_to_detect: unknown EasyOCR language code(s) {unknown}")
    return list(languages)


def bind_torch(replica) -> None:
    """Apply a replica's plan to torch in this process, before the model is built."""
    import torch

    if replica.device.startswith("cuda"):
        device = torch.device(replica.device)
        fraction = replica.memory_fraction
        if fraction is None and replica.memory_bytes:
            # planned in bytes (a Ray pool's share): the allocator takes a fraction of this GPU
            fraction = replica.memory_bytes / torch.cuda.get_device_properties(device).total_memory
        if fraction:
            torch.cuda.set_per_process_memory_fraction(min(1.0, fraction), device)
    else:
        torch.set_num_threads(replica.threads)


def _channels_last(net):
    """CRAFT with NHWC activations: oneDNN's fast path on CPUs (1.3x at 360p,
    1.4x at 720p on 2 AVX2 cores, same boxes: bench/RESULTS.md)."""
    import torch

    class ChannelsLast(torch.nn.Module):
        def __init__(self, module: torch.nn.Module):
            super().__init__()
            self.module = module.to(memory_format=torch.channels_last)

        def forward(self, x):
            return self.module(x.contiguous(memory_format=torch.channels_last))

    return ChannelsLast(net)


def check_precision(device: str, precision: str) -> None:
    """fp16 on a CPU is refused: torch runs it, but several times slower than
    fp32 (no fp16 units), which is never what a user asking for speed wants."""
    if precision == "fp16" and not str(device).startswith("cuda"):
        raise ConfigError(f"precision fp16 is for GPUs, and this replica runs on {device}: there it is slower than "
                          "fp32; use precision bf16 on a CPU (AVX-512 BF16 or AMX units make it several times "
                          "faster), or run on a GPU")


def _autocast(net, device: str, precision: str):
    """CRAFT under ``torch.autocast`` in bf16 or fp16, its outputs back in
    fp32: EasyOCR's post-processing reads them with numpy, which has no
    bfloat16. Convolutions then run on the CPU's AMX or AVX-512 BF16 units,
    or a GPU's tensor cores; the score maps differ slightly from fp32's, so
    the boxes can too (docs/fast-detector.md, "precision")."""
    import torch

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    device_type = torch.device(device).type

    class Autocast(torch.nn.Module):
        def __init__(self, module: torch.nn.Module):
            super().__init__()
            self.module = module

        def forward(self, x):
            with torch.autocast(device_type, dtype=dtype):
                y, feature = self.module(x)
            return y.float(), feature.float()

    return Autocast(net)


def load_craft(path: Path, device: torch.device) -> torch.nn.Module:
    """EasyOCR's CRAFT network with the weights in ``path``, on ``device``, in eval mode: what
    ``easyocr.detection.get_detector`` returns, built on the meta device first. Built as EasyOCR
    builds it, torchvision's VGG-16 backbone fills every layer with random numbers, its 400 MB
    classifier included (which CRAFT drops), for the file to overwrite them: 2.5 of the 3.4 s a
    replica took to start on a CPU core. The load is strict, so the file sets every tensor of
    the network, and none is left on the meta device. EasyOCR's dynamic int8 quantisation on a
    CPU is left out: it converts linear and recurrent layers, and CRAFT has none (the result is
    the same network, Data-Juicer's included)."""
    import torch
    from easyocr.craft import CRAFT
    from easyocr.detection import copyStateDict

    with torch.device("meta"):
        net = CRAFT()
    net.load_state_dict(copyStateDict(torch.load(path, map_location=device, weights_only=True)), assign=True)
    unset = [name for name, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
    if unset:  # a strict load sets everything: only a change in EasyOCR could get here
        raise RuntimeError(f"{path}: these CRAFT tensors were not loaded: {unset}")
    return net.eval()


class CraftDetector:
    """Callable detector: a list of RGB frames in, one :class:`Detections` per
    frame out. Frames of equal size run through the network as one batch."""

    name = "craft"

    def __init__(self, device: str = "cpu", params: CraftParams = CraftParams(), weights_dir: str | None = None,
                 channels_last: bool = True, precision: str = "fp32"):
        import easyocr
        import torch  # imported here: the parent process never needs it
        from easyocr.detection import get_textbox

        folder = find_craft_weights(weights_dir)
        # Languages only pick a recogniser, which is not built; 'en' needs no file. The detector
        # is built below, as EasyOCR would build it, and handed to the reader that runs it.
        reader = easyocr.Reader(
            ["en"],
            gpu=False,
            model_storage_directory=str(folder),
            user_network_directory=str(folder),
            download_enabled=False,
            detector=False,
            recognizer=False,
            verbose=False,
        )
        reader.detect_network, reader.get_textbox = "craft", get_textbox
        reader.detector = load_craft(folder / CRAFT_FILE, torch.device(str(device)))
        self.device = str(device)
        if channels_last:
            reader.detector = _channels_last(reader.detector)
        check_precision(self.device, precision)
        if precision != "fp32":
            reader.detector = _autocast(reader.detector, self.device, precision)
        reader.device = self.device
        self._reader = reader
        self.params = params

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        results: list[Detections | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            batch = np.stack([images[i] for i in indices]) if len(indices) > 1 else images[indices[0]]
            horizontal, free = self._reader.detect(batch, reformat=len(indices) == 1, **asdict(self.params))
            for i, h, f in zip(indices, horizontal, free):
                results[i] = Detections(
                    horizontal=[[float(v) for v in box] for box in h],
                    free=[[[float(v) for v in point] for point in quad] for quad in f],
                )
        return results  # type: ignore[return-value]
