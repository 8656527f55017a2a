"""The three ways the auditor makes a probe (the paper's (Q*, I), (Q, I*) and (Q*, I*))."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ModeSpec:
    auditor_writes: str | None  # what the auditor writes to change the image (None: the image is kept)
    provenance: str  # what the probe image is: original | regenerated | edited


MODES: dict[str, ModeSpec] = {
    "question": ModeSpec(auditor_writes=None, provenance="original"),  # a new question on the original image
    "regenerate": ModeSpec(auditor_writes="caption", provenance="regenerated"),  # caption -> text-to-image
    "edit": ModeSpec(auditor_writes="edit", provenance="edited"),  # edit command -> image editing
}


def alters_image(mode: str) -> bool:
    return MODES[mode].auditor_writes is not None


def check_modes(modes: Sequence[str]) -> None:
    unknown = [mode for mode in modes if mode not in MODES]
    if unknown or not modes:
        raise ValueError(f"unknown or no mode(s) {list(unknown) or []}: pass --mode with one or more of {', '.join(MODES)}")
