"""Typed records that flow between the stages, and the one on-disk schema derived from them.

A run turns each source image into one :class:`AuditRecord`: the :class:`Probe` the auditor
made, every model's :class:`Answer` and the :class:`Verdict`. The Hub dataset, the harness
tasks and the rectification data are all views of :data:`FEATURES`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import datasets
from PIL import Image

PROVENANCES = ("original", "regenerated", "edited")


@dataclass
class SourceImage:
    """One image of the pool the auditor looks at."""

    source_id: str
    image: Image.Image
    question: str | None = None  # an original question, when the pool has one
    answer: str | None = None  # its ground-truth answer, when the pool has one
    encoded: bytes | None = None  # the file's own bytes, stored as they are instead of re-encoding
    extra: dict[str, Any] = field(default_factory=dict)  # what the pool knows beyond pixels (a world's scene)

    @property
    def image_sha(self) -> str:
        return image_sha256(self.image)


@dataclass
class Probe:
    """A question-image pair made by the auditor, with where it came from."""

    probe_id: str
    source_id: str
    mode: str  # question | regenerate | edit
    image: Image.Image  # the image the answerers see (original, regenerated or edited)
    source_image: Image.Image
    question: str
    provenance: str  # original | regenerated | edited
    question_origin: str  # auditor | dataset
    caption: str | None = None  # regeneration caption (mode regenerate)
    edit_command: str | None = None  # editing command (mode edit)
    auditor_id: str = ""
    prompt_variant: str = "auditdm"  # auditdm | baseline
    renderer_id: str = "identity"
    source_question: str | None = None
    source_answer: str | None = None
    source_encoded: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # ground truth and other facts about the probe

    @property
    def image_sha(self) -> str:
        return image_sha256(self.image)


@dataclass
class Answer:
    """One model's answer to one probe."""

    model_id: str
    raw: str
    normalized: str
    error: str | None = None  # set when the model raised; raw/normalized are then empty

    @property
    def usable(self) -> bool:
        return self.error is None and bool(self.normalized)


@dataclass
class Verdict:
    """What the judge concluded for one probe."""

    target_answer: str
    reference_answers: list[str]
    consensus_answer: str | None
    agreement: float  # share of references that give the consensus answer
    ensemble_agrees: bool
    target_matches_consensus: bool
    is_failure: bool
    reward: float
    failure_type: str | None = None


@dataclass
class AuditRecord:
    probe: Probe
    target: Answer
    references: list[Answer]
    verdict: Verdict
    run_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """Flatten to one row of :data:`FEATURES`."""
        p, v = self.probe, self.verdict
        return {
            "probe_id": p.probe_id,
            "run_id": self.run_id,
            "source_id": p.source_id,
            "mode": p.mode,
            "image": _image_cell(p.image, p.source_encoded if p.provenance == "original" else None),
            # null when the probe image is the original: stored once, under "image"
            "source_image": None if p.provenance == "original" else _image_cell(p.source_image, p.source_encoded),
            "image_sha256": p.image_sha,
            "question": p.question,
            "provenance": p.provenance,
            "question_origin": p.question_origin,
            "caption": p.caption,
            "edit_command": p.edit_command,
            "auditor_id": p.auditor_id,
            "prompt_variant": p.prompt_variant,
            "renderer_id": p.renderer_id,
            "source_question": p.source_question,
            "source_answer": p.source_answer,
            "target_model": self.target.model_id,
            "target_answer": self.target.raw,
            "target_answer_normalized": self.target.normalized,
            "target_error": self.target.error,
            "reference_models": [a.model_id for a in self.references],
            "reference_answers": [a.raw for a in self.references],
            "reference_answers_normalized": [a.normalized for a in self.references],
            "consensus_answer": v.consensus_answer,
            "agreement": float(v.agreement),
            "ensemble_agrees": v.ensemble_agrees,
            "target_matches_consensus": v.target_matches_consensus,
            "is_failure": v.is_failure,
            "reward": float(v.reward),
            "failure_type": v.failure_type,
            "extra": json.dumps({**p.extra, **self.extra}, sort_keys=True) if (p.extra or self.extra) else None,
        }


_str = datasets.Value("string")
FEATURES = datasets.Features(
    {
        "probe_id": _str,
        "run_id": _str,
        "source_id": _str,
        "mode": _str,
        "image": datasets.Image(),
        "source_image": datasets.Image(),
        "image_sha256": _str,
        "question": _str,
        "provenance": _str,
        "question_origin": _str,
        "caption": _str,
        "edit_command": _str,
        "auditor_id": _str,
        "prompt_variant": _str,
        "renderer_id": _str,
        "source_question": _str,
        "source_answer": _str,
        "target_model": _str,
        "target_answer": _str,
        "target_answer_normalized": _str,
        "target_error": _str,
        "reference_models": datasets.Sequence(_str),
        "reference_answers": datasets.Sequence(_str),
        "reference_answers_normalized": datasets.Sequence(_str),
        "consensus_answer": _str,
        "agreement": datasets.Value("float32"),
        "ensemble_agrees": datasets.Value("bool"),
        "target_matches_consensus": datasets.Value("bool"),
        "is_failure": datasets.Value("bool"),
        "reward": datasets.Value("float32"),
        "failure_type": _str,
        "extra": _str,  # JSON: ground truth where known (the world's scene and true answer), other facts
    }
)



def _image_cell(image: Image.Image, encoded: bytes | None) -> Image.Image | dict[str, Any]:
    """An ``Image`` feature value: the file's own bytes when known (no re-encoding), else the image."""
    return {"bytes": encoded, "path": None} if encoded is not None else image


def image_sha256(image: Image.Image) -> str:
    """Content hash of the decoded pixels (size and mode included), independent of file format."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()
