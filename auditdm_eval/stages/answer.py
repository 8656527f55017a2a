"""The answer stage of one model: the target, or one reference of the ensemble, answers every probe."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from model_adapters import GREEDY, GenerationRequest, GenerationSettings

from ..answering import ModelStage
from ..matching import normalize_answer
from ..records import Answer, WorkItem
from ..registry import part
from ..resources import ModelRef, Resources

ROLES = ("target", "reference")


@dataclass(frozen=True)
class AnswerSpec:
    model: ModelRef
    role: str  # target | reference (references are appended in the order their stages run)
    settings: GenerationSettings = GREEDY
    cache: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"an answer stage's role is one of {ROLES}, not {self.role!r}")

    @property
    def name(self) -> str:
        return f"answer:{self.role}:{self.model.name}"

    def build(self, resources: Resources) -> AnswerStage:
        return AnswerStage(self, resources)

    def part(self) -> dict[str, Any]:
        return part(self.model.name, role=self.role, **self.settings.key())


class AnswerStage(ModelStage):
    spec: AnswerSpec

    def __call__(self, batch: list[WorkItem]) -> list[WorkItem]:
        batch = list(batch)
        todo = [i for i, item in enumerate(batch) if item.alive and item.question and item.image is not None]
        if not todo:
            return batch
        requests = [
            GenerationRequest(
                images=(batch[i].image,), prompt=batch[i].question, task="vqa", settings=self.spec.settings,
                metadata={"image_shas": [batch[i].image_sha]},
            )
            for i in todo
        ]
        model_id = self.generator.model_id
        for i, output in zip(todo, self.generator(requests)):
            answer = Answer(model_id, output.text, normalize_answer(output.text) if output.error is None else "", output.error)
            item = batch[i]
            batch[i] = item.but(target=answer) if self.spec.role == "target" else item.but(references=(*item.references, answer))
        return batch
