"""What the benchmark scripts share: the photos they audit and a description of the machine they ran on."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "horse", "clock", "camera", "coins"]


def make_images(folder: Path, count: int, first: int = 0) -> None:
    """Distinct photos: scikit-image samples, cropped at shifting offsets so every image differs (up to
    2,048 of them; the offsets stay under 128 px down and 248 px across, inside the smallest sample)."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(first, first + count):
        array = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
        shift = i // len(PHOTOS)
        down, across = 8 * (shift % 16), 8 * (shift % 16 + shift // 16)
        Image.fromarray(np.asarray(array)[down:, across:]).convert("RGB").save(folder / f"img{i:03d}.png")


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    gpu = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()}-core {cpu} ({platform.machine()}), {memory:.0f} GiB RAM, {gpu}"
