"""The audit flow: sources -> auditor -> renderer -> answerers -> judge -> store.

Each stage takes a batch and returns a batch, so the same stages serve this in-process loop,
a distributed map over batches, and the RL reward function (:mod:`auditdm_eval.reward`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from PIL import Image
from tqdm.auto import tqdm

from model_adapters import GREEDY, GenerationRequest, GenerationSettings

from .answering import CachedGenerator, Output
from .auditor import Auditor
from .cache import content_key
from .isolation import call_isolating_failures
from .judge import Judge
from .matching import normalize_answer
from .records import Answer, AuditRecord, Probe, SourceImage, image_sha256
from .renderers import CachedRenderer
from .sources import SourceIssue, SourceItem
from .store import AuditStore, Issue

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModeSpec:
    """How one audit mode turns a source image into a probe."""

    auditor_writes: str | None  # what the auditor writes to change the image (None: image kept)
    provenance: str


MODES: dict[str, ModeSpec] = {
    "question": ModeSpec(auditor_writes=None, provenance="original"),  # (Q*, I)
    "regenerate": ModeSpec(auditor_writes="caption", provenance="regenerated"),  # (Q or Q*, I*)
    "edit": ModeSpec(auditor_writes="edit", provenance="edited"),  # (Q or Q*, I*)
}


@dataclass
class Pending:
    """One (source image, mode, sample) on its way to becoming a probe."""

    source: SourceImage
    source_sha: str
    mode: str
    sample: int
    probe_id: str
    seed: int
    image: Image.Image | None = None
    image_sha: str | None = None
    caption: str | None = None
    edit_command: str | None = None
    question: str | None = None
    question_origin: str = "auditor"


@dataclass
class RunStats:
    written: int = 0
    skipped_done: int = 0
    issues: int = 0
    failures: int = 0
    shards: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the audit loop, model loading excluded


def batched(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class AuditPipeline:
    auditor: Auditor
    target: CachedGenerator
    references: list[CachedGenerator]
    renderers: dict[str, CachedRenderer]  # by mode, for the modes that change the image
    judge: Judge
    store: AuditStore
    modes: Sequence[str]
    run_id: str
    seed: int = 0
    probes_per_image: int = 1
    use_source_questions: bool = True
    batch_size: int = 8
    show_progress: bool = True
    answer_settings: GenerationSettings = GREEDY

    def __post_init__(self) -> None:
        unknown = [mode for mode in self.modes if mode not in MODES]
        if unknown:
            raise ValueError(f"unknown mode(s) {unknown}; choose from: {', '.join(MODES)}")
        missing = [m for m in self.modes if MODES[m].auditor_writes and m not in self.renderers]
        if missing:
            raise ValueError(f"mode(s) {missing} need a renderer")

    # -- the loop -----------------------------------------------------------------------------
    def run(self, sources: Iterable[SourceItem], total: int | None = None) -> RunStats:
        stats = RunStats()
        started = time.perf_counter()
        done = self.store.done_probe_ids()
        progress = tqdm(total=total, unit="image", desc="audit", disable=not self.show_progress)
        for chunk in batched(sources, self.batch_size):
            records, issues, skipped = self.process(chunk, done)
            shard = self.store.write_shard(records)
            self.store.add_issues(issues)
            if shard is not None:
                stats.shards.append(shard.name)
            done.update(record.probe.probe_id for record in records)
            stats.written += len(records)
            stats.skipped_done += skipped
            stats.issues += len(issues)
            stats.failures += sum(record.verdict.is_failure for record in records)
            progress.update(len(chunk))
            progress.set_postfix(probes=stats.written, failures=stats.failures, resumed=stats.skipped_done)
        progress.close()
        stats.seconds = time.perf_counter() - started
        return stats

    def process(self, chunk: Sequence[SourceItem], done: set[str] = frozenset()) -> tuple[list[AuditRecord], list[Issue], int]:
        """One batch of sources -> audited records (every mode), issues, and how many were already done."""
        issues = [Issue(item.source_id, "*", "input", f"{item.message} -> {item.fix}") for item in chunk if isinstance(item, SourceIssue)]
        images = [item for item in chunk if isinstance(item, SourceImage)]
        pending, skipped = self._pending(images, done)
        probes: list[Probe] = []
        for mode in self.modes:
            mode_pending = [p for p in pending if p.mode == mode]
            if mode_pending:
                made, mode_issues = self.make_probes(mode, mode_pending)
                probes.extend(made)
                issues.extend(mode_issues)
        records, answer_issues = self.answer_and_judge(probes)
        return records, issues + answer_issues, skipped

    def _pending(self, images: Sequence[SourceImage], done: set[str]) -> tuple[list[Pending], int]:
        pending, skipped = [], 0
        for source in images:
            for mode in self.modes:
                for sample in range(self.probes_per_image):
                    item = self.pending_for(source, mode, sample)
                    if item.probe_id in done:
                        skipped += 1
                    else:
                        pending.append(item)
        return pending, skipped

    # -- stages -------------------------------------------------------------------------------
    def make_probes(
        self, mode: str, pending: list[Pending], auditor_texts: Sequence[Output] | None = None
    ) -> tuple[list[Probe], list[Issue]]:
        """Auditor (+ renderer) stage: turn pending items of one mode into probes.

        ``auditor_texts`` supplies the auditor's output per item (the question in question mode,
        the caption or edit command otherwise) instead of generating it: the RL reward passes the
        policy's completions here.
        """
        spec = MODES[mode]
        issues: list[Issue] = []
        if spec.auditor_writes is None:
            for item in pending:
                item.image, item.image_sha = item.source.image, item.source_sha
            if auditor_texts is not None:
                for item, text in self._keep_ok(pending, list(auditor_texts), mode, "auditor:question", issues):
                    item.question = text
                pending = [item for item in pending if item.question]
        else:
            pending = self._alter_images(mode, spec.auditor_writes, pending, issues, auditor_texts)
        pending = self._write_questions(mode, pending, issues)
        probes = [
            Probe(
                probe_id=item.probe_id,
                source_id=item.source.source_id,
                mode=mode,
                image=item.image,
                source_image=item.source.image,
                question=item.question,
                provenance=spec.provenance,
                question_origin=item.question_origin,
                caption=item.caption,
                edit_command=item.edit_command,
                auditor_id=self.auditor.auditor_id,
                prompt_variant=self.auditor.variant,
                renderer_id=self.renderers[mode].renderer_id if mode in self.renderers else "identity",
                source_question=item.source.question,
                source_answer=item.source.answer,
                source_encoded=item.source.encoded,
                extra=dict(item.source.extra),
            )
            for item in pending
        ]
        return probes, issues

    def _alter_images(
        self, mode: str, kind: str, pending: list[Pending], issues: list[Issue], given: Sequence[Output] | None
    ) -> list[Pending]:
        texts = list(given) if given is not None else self.auditor.write(
            kind, [p.source.image for p in pending], [p.source_sha for p in pending], [p.seed for p in pending]
        )
        kept = self._keep_ok(pending, texts, mode, f"auditor:{kind}", issues)
        for item, text in kept:
            if kind == "caption":
                item.caption = text
            else:
                item.edit_command = text
        items = [item for item, _ in kept]
        rendered = self._render(mode, items, [text for _, text in kept], issues)
        for item, image in zip(items, rendered):
            item.image = image
            if image is not None:
                item.image_sha = image_sha256(image)
        return [item for item in items if item.image is not None]

    def _render(self, mode: str, items: list[Pending], texts: list[str], issues: list[Issue]) -> list[Image.Image | None]:
        renderer = self.renderers[mode]
        jobs = [(item.source.image, text, item.seed, item.source_sha) for item, text in zip(items, texts)]
        outcomes = call_isolating_failures(
            lambda batch: renderer.render(*(list(column) for column in zip(*batch))), jobs, renderer.renderer_id
        )
        for item, (_, error) in zip(items, outcomes):
            if error is not None:
                issues.append(Issue(item.source.source_id, mode, "render", f"{renderer.renderer_id} raised {error}"))
        return [image for image, _ in outcomes]

    def _write_questions(self, mode: str, pending: list[Pending], issues: list[Issue]) -> list[Pending]:
        ask = []
        for item in pending:
            if item.question:
                continue
            if mode != "question" and self.use_source_questions and item.source.question:
                item.question, item.question_origin = item.source.question, "dataset"  # (Q, I*)
            else:
                ask.append(item)
        if ask:
            questions = self.auditor.write("question", [p.image for p in ask], [p.image_sha for p in ask], [p.seed for p in ask])
            for item, text in self._keep_ok(ask, questions, mode, "auditor:question", issues):
                item.question = text
        return [item for item in pending if item.question]

    def pending_for(self, source: SourceImage, mode: str, sample: int = 0) -> Pending:
        sha = source.image_sha
        probe_id = content_key(source=source.source_id, image=sha, mode=mode, sample=sample)[:20]
        return Pending(source, sha, mode, sample, probe_id, int(content_key(seed=self.seed, probe=probe_id)[:8], 16))

    @staticmethod
    def _keep_ok(items: list[Pending], outputs: list[Output], mode: str, stage: str, issues: list[Issue]) -> list[tuple[Pending, str]]:
        kept = []
        for item, output in zip(items, outputs):
            if output.error is not None:
                issues.append(Issue(item.source.source_id, mode, stage, output.error))
            else:
                kept.append((item, output.text))
        return kept

    def answer_and_judge(self, probes: Sequence[Probe]) -> tuple[list[AuditRecord], list[Issue]]:
        """Answerer + judge stage: every model answers every probe; the judge gives verdicts."""
        if not probes:
            return [], []
        requests = [
            GenerationRequest(
                images=(p.image,), prompt=p.question, task="vqa", settings=self.answer_settings,
                metadata={"image_shas": [p.image_sha]},
            )
            for p in probes
        ]
        target = self.answers(self.target, requests)
        references = [self.answers(generator, requests) for generator in self.references]
        issues = [
            Issue(probe.source_id, probe.mode, f"answer:{answer.model_id}", answer.error)
            for answers in [target, *references]
            for probe, answer in zip(probes, answers)
            if answer.error is not None
        ]
        per_probe_refs = [[answers[i] for answers in references] for i in range(len(probes))]
        verdicts = self.judge.judge_batch(target, per_probe_refs, [p.question for p in probes], [p.image for p in probes])
        records = [
            AuditRecord(probe=probe, target=t, references=refs, verdict=verdict, run_id=self.run_id)
            for probe, t, refs, verdict in zip(probes, target, per_probe_refs, verdicts)
        ]
        return records, issues

    @staticmethod
    def answers(generator: CachedGenerator, requests: Sequence[GenerationRequest]) -> list[Answer]:
        return [
            Answer(generator.model_id, output.text, normalize_answer(output.text) if output.error is None else "", output.error)
            for output in generator(requests)
        ]
