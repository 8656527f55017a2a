"""The audit's stages: callable classes that each hold one model (or none), built from a picklable
spec, called batch -> batch over :class:`~auditdm_eval.records.WorkItem` records.

A stage fills in its part of each item it concerns and passes every other item through untouched;
an item it cannot serve comes back with a :class:`~auditdm_eval.records.Failure` (stage, message,
fix), which later stages pass through. No stage knows about order, batching across stages or the
store: an engine does (the local engine chains them in-process; the Ray engine runs each as an actor
pool), and the auditor's GRPO reward chains the same stages over the policy's completions.

    auditor:alteration -> render:<mode> -> auditor:question -> answer:target -> answer:reference... -> judge [-> annotate]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from ..records import WorkItem
from ..resources import Resources


class Stage(Protocol):
    name: str

    def __call__(self, batch: list[WorkItem]) -> list[WorkItem]: ...


def prepare(stage: Stage) -> None:
    """Get ``stage`` ready before its first batch, if it has a ``prepare()``: a model stage loads what it
    cannot answer without (nothing, when the cache knows the model), so an engine can do it while the
    first images are read instead of after."""
    getattr(stage, "prepare", lambda: None)()


class StageSpec(Protocol):
    """A picklable recipe for a stage: an engine builds the stage where it runs."""

    @property
    def name(self) -> str: ...

    def build(self, resources: Resources) -> Stage: ...

    def part(self) -> dict[str, Any]:
        """The stage's registered name and arguments, for the run's manifest."""
        ...


def run_chain(stages: Sequence[Stage], batch: list[WorkItem]) -> list[WorkItem]:
    for stage in stages:
        batch = stage(batch)
    return batch
