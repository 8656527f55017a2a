"""The local engine: the stages chained in this process, one batch of source images at a time,
one shard per batch (so an interrupted run resumes at the last whole batch).

Reading and decoding the next batch of images, and writing the previous batch's shard, run on a
helper thread each while the models work on the current batch (one of each in flight at a time,
in order): the models rarely wait for the pipeline. What is written, and in which shards, is the
same as doing them one after the other.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from tqdm.auto import tqdm

from ..plan import AuditPlan, batched, outcomes
from ..records import AuditRecord, SourceImage
from ..resources import Resources
from ..sources import SourceIssue, SourceItem
from ..stages import prepare, run_chain
from ..store import AuditStore, Issue
from . import EngineOptions, RunStats


class LocalEngine:
    def __init__(self, options: EngineOptions, resources: Resources | None = None):
        self.options = options
        self.resources = resources or Resources()

    def run(self, plan: AuditPlan, sources: Iterable[SourceItem], store: AuditStore, total: int | None = None) -> RunStats:
        stats = RunStats()
        stages = [spec.build(self.resources) for spec in plan.stages]
        done = store.done_probe_ids()
        started = time.perf_counter()
        progress = tqdm(total=total, unit="image", desc="audit", disable=not self.options.progress)
        chunks = batched(sources, self.options.batch_size)

        def write(records: list[AuditRecord], issues: list[Issue]) -> None:
            shard = store.write_shard(records)
            store.add_issues(issues)
            if shard is not None:
                stats.shards.append(shard.name)

        with ThreadPoolExecutor(1, "audit-read") as reader, ThreadPoolExecutor(1, "audit-write") as writer:
            writing: Future | None = None
            try:
                reading = reader.submit(next, chunks, None)
                for stage in stages:  # models load while the first images decode
                    prepare(stage)
                while (chunk := reading.result()) is not None:
                    reading = reader.submit(next, chunks, None)  # the next batch decodes while this one runs
                    issues = [Issue(item.source_id, "*", "input", item.message, item.fix) for item in chunk if isinstance(item, SourceIssue)]
                    items, skipped = plan.work_items([item for item in chunk if isinstance(item, SourceImage)], done)
                    records, item_issues = outcomes(run_chain(stages, items), plan.run_id)
                    stats.first_results_seconds = stats.first_results_seconds or time.perf_counter() - started
                    if writing is not None:
                        writing.result()  # one shard in flight: shards land in order, and an error stops the run here
                    writing = writer.submit(write, records, issues + item_issues)
                    done.update(record.probe.probe_id for record in records)
                    stats.written += len(records)
                    stats.skipped_done += skipped
                    stats.issues += len(issues) + len(item_issues)
                    stats.failures += sum(record.verdict.is_failure for record in records)
                    progress.update(len(chunk))
                    progress.set_postfix(probes=stats.written, failures=stats.failures, resumed=stats.skipped_done)
                if writing is not None:
                    writing.result()
            finally:
                if writing is not None and not writing.done():
                    writing.exception()  # the batches already finished are written, whatever stopped the run
                progress.close()
                stats.seconds = time.perf_counter() - started
                stats.busy_seconds = dict(self.resources.clock.seconds)
                stats.answer_cache_hits, stats.answer_cache_misses = self.resources.cache_counts()
        return stats
