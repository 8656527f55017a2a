"""Every record of the audit, and the one on-disk schema derived from them.

- :class:`SourceImage`: an image of the pool (hashed once).
- :class:`WorkItem`: one probe on its way through the stages; each stage returns the items
  with its part filled in, or with a :class:`Failure` that later stages pass through.
- :class:`Probe`, :class:`Answer`, :class:`Verdict`: what an audited pair is made of;
  :class:`AuditRecord` holds them and converts to and from a row of :data:`FEATURES`.

The Hub dataset, the harness tasks and the training data are all views of :data:`FEATURES`.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from typing import Any

from PIL import Image

PROVENANCES = ("original", "regenerated", "edited")


def image_sha256(image: Image.Image) -> str:
    """Content hash of the decoded pixels (size and mode included), independent of file format."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Failure:
    """Why a stage could not make its part of a probe, and what to do about it."""

    stage: str  # e.g. "auditor:caption", "render:edit", "input"
    message: str
    fix: str = ""


@dataclass
class SourceImage:
    """One image of the pool the auditor looks at."""

    source_id: str
    image: Image.Image
    question: str | None = None  # an original question, when the pool has one
    answer: str | None = None  # its ground-truth answer, when the pool has one
    encoded: bytes | None = None  # the file's own bytes, stored as they are instead of re-encoding
    extra: dict[str, Any] = field(default_factory=dict)  # what the pool knows beyond pixels (a world's scene)

    @cached_property
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
    image_sha: str = ""
    image_encoded: bytes | None = None  # a PNG file of an altered ``image`` (from the render cache), stored as it is

    def __post_init__(self) -> None:
        if not self.image_sha:
            self.image_sha = image_sha256(self.image)


@dataclass(frozen=True)
class WorkItem:
    """One (source image, mode, sample) on its way to becoming an audited probe."""

    probe_id: str
    source: SourceImage
    mode: str
    sample: int
    seed: int  # the auditor's and the renderer's seed for this probe
    provenance: str = "original"
    image: Image.Image | None = None  # what the answerers see, once known
    image_sha: str | None = None
    image_encoded: bytes | None = None  # a PNG file of a rendered ``image``, when the renderer's cache has one
    renderer_id: str = "identity"
    caption: str | None = None
    edit_command: str | None = None
    question: str | None = None
    question_origin: str = "auditor"
    auditor_id: str = ""
    prompt_variant: str = ""
    target: Answer | None = None
    references: tuple[Answer, ...] = ()
    verdict: Verdict | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    failure: Failure | None = None

    @property
    def alive(self) -> bool:
        return self.failure is None

    def but(self, **changes: Any) -> WorkItem:
        return replace(self, **changes)

    def fail(self, stage: str, message: str, fix: str = "") -> WorkItem:
        return replace(self, failure=Failure(stage, message, fix))

    def probe(self) -> Probe:
        assert self.image is not None and self.question, f"{self.probe_id} is not a probe yet"
        return Probe(
            probe_id=self.probe_id,
            source_id=self.source.source_id,
            mode=self.mode,
            image=self.image,
            source_image=self.source.image,
            question=self.question,
            provenance=self.provenance,
            question_origin=self.question_origin,
            caption=self.caption,
            edit_command=self.edit_command,
            auditor_id=self.auditor_id,
            prompt_variant=self.prompt_variant,
            renderer_id=self.renderer_id,
            source_question=self.source.question,
            source_answer=self.source.answer,
            source_encoded=self.source.encoded,
            extra={**self.source.extra, **self.extra},
            image_sha=self.image_sha or "",
            image_encoded=self.image_encoded,
        )

    def record(self, run_id: str) -> AuditRecord:
        assert self.target is not None and self.verdict is not None, f"{self.probe_id} has no verdict"
        return AuditRecord(self.probe(), self.target, list(self.references), self.verdict, run_id)


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
        extra = {**p.extra, **self.extra}
        return {
            "probe_id": p.probe_id,
            "run_id": self.run_id,
            "source_id": p.source_id,
            "mode": p.mode,
            "image": _image_cell(p.image, p.source_encoded if p.provenance == "original" else p.image_encoded),
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
            "failure_type": v.failure_type or known_failure_type(extra),
            "extra": json.dumps(extra, sort_keys=True) if extra else None,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> AuditRecord:
        """The record a row of :data:`FEATURES` was written from (images decoded or as stored bytes)."""
        image = _open(row["image"])
        source_image = _open(row["source_image"]) if row.get("source_image") is not None else image
        extra = json.loads(row["extra"]) if row.get("extra") else {}
        probe = Probe(
            probe_id=row["probe_id"],
            source_id=row["source_id"],
            mode=row["mode"],
            image=image,
            source_image=source_image,
            question=row["question"],
            provenance=row["provenance"],
            question_origin=row["question_origin"],
            caption=row["caption"],
            edit_command=row["edit_command"],
            auditor_id=row["auditor_id"],
            prompt_variant=row["prompt_variant"],
            renderer_id=row["renderer_id"],
            source_question=row["source_question"],
            source_answer=row["source_answer"],
            extra=extra,
            image_sha=row["image_sha256"],
        )
        target = Answer(row["target_model"], row["target_answer"], row["target_answer_normalized"], row["target_error"])
        references = [
            Answer(model, raw, normalized)
            for model, raw, normalized in zip(row["reference_models"], row["reference_answers"], row["reference_answers_normalized"])
        ]
        verdict = Verdict(
            target_answer=row["target_answer"],
            reference_answers=list(row["reference_answers"]),
            consensus_answer=row["consensus_answer"],
            agreement=float(row["agreement"]),
            ensemble_agrees=bool(row["ensemble_agrees"]),
            target_matches_consensus=bool(row["target_matches_consensus"]),
            is_failure=bool(row["is_failure"]),
            reward=float(row["reward"]),
            failure_type=row["failure_type"],
        )
        return cls(probe, target, references, verdict, row["run_id"])


@cache
def features() -> Any:
    """The schema of an audited dataset (``datasets.Features``), one for the Hub, the harnesses and training."""
    import datasets  # imported on use: it takes a second or two

    _str = datasets.Value("string")
    return datasets.Features(
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


def __getattr__(name: str) -> Any:
    if name == "FEATURES":
        return features()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _image_cell(image: Image.Image, encoded: bytes | None) -> Image.Image | dict[str, Any]:
    """An ``Image`` feature value: the file's own bytes when known (no re-encoding), else the image."""
    return {"bytes": encoded, "path": None} if encoded is not None else image


def _open(cell: Any) -> Image.Image:
    if isinstance(cell, Image.Image):
        return cell
    data = cell.get("bytes") if isinstance(cell, dict) else None
    if data is None:
        raise ValueError("a row's image holds no bytes: read the dataset with its Image feature decoding")
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        return opened.copy()


def known_failure_type(extra: str | Mapping[str, Any] | None) -> str | None:
    """The failure type an annotator stated for a probe (its ground truth's), None where none did."""
    facts = json.loads(extra) if isinstance(extra, str) else (extra or {})
    truth = facts.get("truth") if isinstance(facts, Mapping) else None
    return truth.get("failure_type") if isinstance(truth, Mapping) else None
