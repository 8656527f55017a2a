"""The annotation stage: facts about each probe beyond the audit's verdict, from a registered
annotator, stored in the record's ``extra``. The planted-weakness world's annotator gives the
ground truth (the scene the probe image shows and the true answer to its question), so the
precision of an audit is measured, not assumed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image

from ..records import WorkItem
from ..registry import Registry, part
from ..resources import Resources

Annotator = Callable[[Image.Image, str], dict[str, Any]]
ANNOTATORS: Registry[Annotator] = Registry("annotator", "auditdm.annotators")
"""Annotator factories by name; an annotator maps (probe image, question) to a JSON-able dict."""


@dataclass(frozen=True)
class AnnotateSpec:
    annotator: str

    def __post_init__(self) -> None:
        ANNOTATORS.get(self.annotator)

    @property
    def name(self) -> str:
        return f"annotate:{self.annotator}"

    def build(self, resources: Resources) -> AnnotateStage:
        return AnnotateStage(self)

    def part(self) -> dict[str, Any]:
        return part(self.annotator)


class AnnotateStage:
    def __init__(self, spec: AnnotateSpec):
        self.name = spec.name
        self.annotate = ANNOTATORS.build(spec.annotator)

    def __call__(self, batch: list[WorkItem]) -> list[WorkItem]:
        return [
            item.but(extra={**item.extra, **self.annotate(item.image, item.question)})
            if item.alive and item.image is not None and item.question
            else item
            for item in batch
        ]
