"""The judge stage: the consensus of the references, the failure decision and the reward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..judge import AGREEMENT_RULES, REWARDS, Judge
from ..matching import MATCHERS
from ..records import WorkItem
from ..registry import part
from ..resources import ModelRef, Resources


@dataclass(frozen=True)
class JudgeSpec:
    matcher: str = "exact"  # a name in MATCHERS
    matcher_model: ModelRef | None = None  # embedding: a sentence-embedding model; judge: a VLM
    agreement: str = "unanimous"  # a name in AGREEMENT_RULES
    reward: str = "binary"  # a name in REWARDS

    def __post_init__(self) -> None:
        MATCHERS.get(self.matcher)
        AGREEMENT_RULES.get(self.agreement)
        REWARDS.get(self.reward)

    @property
    def name(self) -> str:
        return "judge"

    def build(self, resources: Resources) -> JudgeStage:
        return JudgeStage(self, resources)

    def part(self) -> dict[str, Any]:
        model = self.matcher_model.name if self.matcher_model else None
        return part(self.matcher, matcher_model=model, agreement=self.agreement, reward=self.reward)


def matcher_arguments(spec: JudgeSpec, resources: Resources) -> dict[str, Any]:
    if spec.matcher_model is None:
        return {}
    if spec.matcher == "judge":
        return {"adapter": resources.model(spec.matcher_model)}
    return {"model": spec.matcher_model.name}


class JudgeStage:
    def __init__(self, spec: JudgeSpec, resources: Resources):
        self.spec = spec
        self.name = spec.name
        matcher = MATCHERS.build(spec.matcher, **matcher_arguments(spec, resources))
        self.judge = Judge(matcher, spec.agreement, spec.reward)

    def __call__(self, batch: list[WorkItem]) -> list[WorkItem]:
        return [
            item.but(verdict=self.judge.judge(item.target, item.references, item.question, item.image))
            if item.alive and item.target is not None
            else item
            for item in batch
        ]
