"""The float kernels torch runs: it picks them once, when it loads, by the CPU unless these variables
say otherwise. Weights trained and pixels rendered with a CPU's AVX512 kernels differ from those made
with AVX2 ones (a warm start built on one AVX512 machine could not describe a scene: objects described
right 9.5%, 85% with AVX2 kernels on the same machine), so builds and the test session pin AVX2, which
every x86-64 CPU of the last decade runs. Imports nothing heavy: it is read before torch loads."""

from __future__ import annotations

import platform

PORTABLE_KERNELS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def portable_kernels() -> dict[str, str]:
    """The environment that pins torch, MKL and oneDNN to AVX2 kernels on x86-64; nothing elsewhere."""
    return dict(PORTABLE_KERNELS) if platform.machine().lower() in ("x86_64", "amd64") else {}
