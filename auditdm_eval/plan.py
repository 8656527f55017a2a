"""What an audit run does, independent of the engine that runs it: the stages in order, and how
source images expand into work items and finished items into records and issues."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import TYPE_CHECKING, Any

from .cache import content_key
from .modes import MODES, check_modes
from .records import AuditRecord, SourceImage, WorkItem
from .stages import StageSpec

if TYPE_CHECKING:
    from .store import Issue


def probe_id_of(source: SourceImage, mode: str, sample: int) -> str:
    return content_key(source=source.source_id, image=source.image_sha, mode=mode, sample=sample)[:20]


def probe_seed(run_seed: int, probe_id: str) -> int:
    return int(content_key(seed=run_seed, probe=probe_id)[:8], 16)


@dataclass(frozen=True)
class AuditPlan:
    run_id: str
    modes: tuple[str, ...]
    stages: tuple[StageSpec, ...]
    auditor_id: str = ""
    prompt_variant: str = "auditdm"
    probes_per_image: int = 1
    seed: int = 0
    parts: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        check_modes(self.modes)

    def work_item(self, source: SourceImage, mode: str, sample: int) -> WorkItem:
        probe_id = probe_id_of(source, mode, sample)
        original = not MODES[mode].auditor_writes
        return WorkItem(
            probe_id=probe_id,
            source=source,
            mode=mode,
            sample=sample,
            seed=probe_seed(self.seed, probe_id),
            provenance=MODES[mode].provenance,
            image=source.image if original else None,
            image_sha=source.image_sha if original else None,
            auditor_id=self.auditor_id,
            prompt_variant=self.prompt_variant,
        )

    def work_items(self, sources: Sequence[SourceImage], done: set[str] | frozenset[str] = frozenset()) -> tuple[list[WorkItem], int]:
        """Every (mode, source, sample) of ``sources`` not already ``done``, mode by mode; and how many were done."""
        items, skipped = [], 0
        for mode in self.modes:
            for source in sources:
                for sample in range(self.probes_per_image):
                    item = self.work_item(source, mode, sample)
                    if item.probe_id in done:
                        skipped += 1
                    else:
                        items.append(item)
        return items, skipped


def outcomes(items: Iterable[WorkItem], run_id: str) -> tuple[list[AuditRecord], list[Issue]]:
    """Finished items as records; failed items, and the model calls that raised, as issues."""
    from .store import Issue  # loads datasets: only a run gets here

    records, issues = [], []
    for item in items:
        if item.failure is not None:
            failure = item.failure
            issues.append(Issue(item.source.source_id, item.mode, failure.stage, failure.message, failure.fix))
            continue
        for answer in (item.target, *item.references):
            if answer is not None and answer.error is not None:
                issues.append(Issue(item.source.source_id, item.mode, f"answer:{answer.model_id}", answer.error, "check the model"))
        if item.verdict is not None:
            records.append(item.record(run_id))
    return records, issues


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
