"""The Ray engine: the same stage classes as Ray Data ``map_batches`` actor pools.

How a run goes:

1. The driver reads the image pool window by window, expands each window into work items (the
   probes ``store.done_probe_ids()`` already holds are skipped: that is the resume) and hands them
   to Ray with ``ray.data.from_items``: one row per item, its pickled :class:`WorkItem` in the
   ``item`` column, one block per Ray batch. The pixels go to Ray's object store (spilled to disk
   when it fills), not the driver's memory; the windows are united into one dataset. An image the
   driver knows from the hash memo, not yet decoded, travels as its file's bytes and is decoded
   where a model needs it, if one does.
2. Every stage of the plan becomes one ``map_batches`` over :class:`StageActor`, a callable class
   that builds the stage from its picklable spec in the actor's own process (its own
   :class:`~auditdm_eval.resources.Resources`: models, open caches, stopwatch) and converts each
   Ray batch to ``list[WorkItem]`` and back. Each stage is an actor pool of its own size: model
   stages get ``--ray-actors`` actors of ``--ray-cpus-per-actor`` CPUs and ``--ray-gpus-per-actor``
   GPUs each; stages that hold no model (an exact-match judge, an annotator, a programmatic
   renderer) one actor without GPU; ``--ray-stage-resources`` overrides any stage by name prefix.
   An actor loads its model when it starts (unless the cache knows it: then when first needed).
3. The driver iterates the result as Ray streams it back (``iter_batches``) and writes finished
   records into the same :class:`~auditdm_eval.store.AuditStore` as they arrive, one shard per
   ``--batch-size`` source images' worth of probes, each shard written atomically under this
   writer's own name. A probe id is written once per run, even if Ray re-ran a batch; a killed
   run resumes from the shards on disk with nothing lost and nothing written twice.

Every actor opens the same answer cache (SQLite in WAL mode with a busy timeout, so several
processes read and write it at once) and the same render cache folder (files written under
unique temporary names, then renamed). The time each actor spends inside model and renderer
calls and its cache hits and misses travel back with the items (the ``stats`` column), so
:class:`~auditdm_eval.engines.RunStats` adds them up as the local engine does. So does an
exception that stops a stage (the ``fatal`` column): the driver raises the stage's own exception
(a model that cannot load says why, as in the local engine), with the actor's traceback as a note.

Ray is started as a local instance of ``--ray-num-cpus`` CPUs unless this process already runs one
or ``--ray-address`` names a cluster to join; the engine shuts down only what it started. On a
cluster of several machines, every node needs the package installed and ``--cache-dir`` on a disk
of its own (SQLite's WAL mode does not work over a network file system).

Ray is an optional extra: ``pip install 'auditdm-eval[ray]'``.
"""

from __future__ import annotations

import io
import json
import logging
import math
import pickle
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageFile
from tqdm.auto import tqdm

from ..errors import ConfigError
from ..plan import AuditPlan, batched, outcomes
from ..records import AuditRecord, SourceImage, WorkItem
from ..resources import ModelRef, Resources
from ..sources import SourceIssue, SourceItem
from ..stages import StageSpec, prepare
from ..stages.render import RenderSpec
from ..store import AuditStore, Issue
from . import EngineConfig, EngineOptions, RunStats, stage_overrides

logger = logging.getLogger(__name__)

ITEM = "item"  # a pickled WorkItem per row
STATS = "stats"  # per batch, on its first row: JSON of seconds inside model/renderer calls and cache counts
FATAL = "fatal"  # per batch, on its first row: the pickled exception that stopped a stage (the driver raises it)
WINDOW_IMAGES = 256  # source images read into the object store per from_items call
LIGHT_RENDERERS = frozenset({"identity", "world"})  # render backends without a model: no GPU, one actor
INSTALL = "pip install 'auditdm-eval[ray]'"


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a :class:`ConfigError` that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ConfigError(
            f"--engine ray needs Ray Data, which is not installed ({error}): {INSTALL}, or run with --engine local"
        ) from None
    return ray


# -- actor pools ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pool:
    """The actors of one stage: how many, and what each reserves."""

    actors: int
    gpus: float
    cpus: float


def holds_model(spec: StageSpec) -> bool:
    """Whether a stage loads a model (a VLM, a judge or matcher model, a diffusers pipeline)."""
    if isinstance(getattr(spec, "model", None), ModelRef) or getattr(spec, "matcher_model", None) is not None:
        return True
    return isinstance(spec, RenderSpec) and spec.backend not in LIGHT_RENDERERS


def pool_sizes(stages: Sequence[StageSpec], config: EngineConfig) -> dict[str, Pool]:
    """Each stage's actor pool: the engine's defaults, then the longest matching ``--ray-stage-resources`` prefix."""
    overrides = stage_overrides(config.ray_stage_resources)
    names = [spec.name for spec in stages]
    for override in overrides:
        if not any(name.startswith(override.prefix) for name in names):
            raise ConfigError(
                f"--ray-stage-resources: {override.prefix!r} names no stage of this run; its stages are {', '.join(names)}"
            )
    pools = {}
    for spec in stages:
        heavy = holds_model(spec)
        pool = Pool(config.ray_actors if heavy else 1, config.ray_gpus_per_actor if heavy else 0.0, config.ray_cpus_per_actor)
        matches = [o for o in overrides if spec.name.startswith(o.prefix)]
        if matches:
            best = max(matches, key=lambda o: len(o.prefix))
            pool = Pool(best.actors, pool.gpus if best.gpus is None else best.gpus, pool.cpus if best.cpus is None else best.cpus)
        pools[spec.name] = pool
    return pools


def check_fits(pools: dict[str, Pool], available: dict[str, float], strict: bool) -> None:
    """Refuse (``strict``: a Ray instance this run started) or warn (a cluster that may scale up)
    when the pools reserve more CPUs or GPUs than the cluster has: their actors would never start."""
    need = {"CPU": sum(p.actors * p.cpus for p in pools.values()), "GPU": sum(p.actors * p.gpus for p in pools.values())}
    short = {kind: amount for kind, amount in need.items() if amount > available.get(kind, 0.0) + 1e-9}
    if not short:
        return
    each = "; ".join(f"{name}: {p.actors} x ({p.cpus:g} CPU, {p.gpus:g} GPU)" for name, p in pools.items())
    message = (
        "the stages' actor pools reserve "
        + " and ".join(f"{need[k]:g} {k}s" for k in short)
        + " but the Ray cluster has "
        + " and ".join(f"{available.get(k, 0.0):g}" for k in short)
        + f" ({each}). Lower --ray-actors, --ray-cpus-per-actor or --ray-gpus-per-actor, size stages one by one "
        "with --ray-stage-resources, or give Ray more (--ray-num-cpus, or a larger cluster)."
    )
    if strict:
        raise ConfigError(message)
    logger.warning("%s Waiting for the cluster to scale up.", message)


# -- the stage as a Ray Data callable class -------------------------------------------------------
def dump(item: WorkItem) -> bytes:
    buffer = io.BytesIO()
    _ItemPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(item)
    return buffer.getvalue()


class _ItemPickler(pickle.Pickler):
    """Pickles an image file not decoded yet (a source the driver knows from the hash memo) as its
    file's bytes, not its pixels: the driver decodes nothing, and the pixels are decoded where a
    model needs them, if one does."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, ImageFile.ImageFile) and obj.tile and isinstance(obj.fp, io.BytesIO):
            return _reopen, (obj.fp.getvalue(), obj.info, obj.format)
        return NotImplemented


def _reopen(data: bytes, info: dict[str, Any], format: str | None) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.info, image.format = info, format
    return image


def load(data: bytes) -> WorkItem:
    return pickle.loads(data)


def batch_stats(batch: dict[str, Any]) -> Counter:
    """The model/renderer seconds and cache counts a batch's rows carry (summed over its rows)."""
    total: Counter = Counter()
    for cell in batch.get(STATS, ()):
        if cell:
            total.update(json.loads(cell))
    return total


def pack_error(error: BaseException) -> bytes:
    """``error`` as bytes the driver can raise again, with the actor's traceback as a note."""
    trace = "".join(traceback.format_exception(error)).rstrip()
    try:
        data = pickle.dumps(error)
        pickle.loads(data)
    except Exception:  # noqa: BLE001 - an exception that does not survive pickling travels as its text
        error = RuntimeError(f"{type(error).__name__}: {error}")
        data = pickle.dumps(error)
    return pickle.dumps((data, trace))


def unpack_error(data: bytes) -> BaseException:
    pickled, trace = pickle.loads(data)
    try:
        error = pickle.loads(pickled)
    except Exception as failure:  # noqa: BLE001
        error = RuntimeError(f"a stage failed and its error could not be read back ({failure})")
    if hasattr(error, "add_note"):
        error.add_note(f"raised in a Ray actor:\n{trace}")
    return error


def batch_error(batch: dict[str, Any]) -> BaseException | None:
    """The exception a stage of this batch's way stopped on, if one did."""
    return next((unpack_error(cell) for cell in batch.get(FATAL, ()) if cell), None)


class StageActor:
    """One stage in one Ray actor: built from its spec in the actor's process, mapping Ray batches
    (``{"item": [pickled WorkItem, ...], "stats": [...], "fatal": [...]}``) through the stage's
    ``list[WorkItem]`` call. An exception (a model that cannot load, a stage that raises) travels to
    the driver in the batch, which raises it as the local engine would: Ray's own error would carry
    only its text."""

    def __init__(self, spec: StageSpec):
        import auditdm_eval  # noqa: F401 - registers the project's parts (the world's models, renderers, annotator)

        _quiet_loading()
        self.resources = Resources()
        self.error: BaseException | None = None
        try:
            self.stage = spec.build(self.resources)
            prepare(self.stage)  # the actor is ready when its model is loaded (or known to the cache)
        except Exception as error:  # noqa: BLE001 - handed to the driver with the first batch
            self.error = error

    def _counters(self) -> Counter:
        hits, misses = self.resources.cache_counts()
        return Counter({**self.resources.clock.seconds, "cache_hits": hits, "cache_misses": misses})

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        rows = len(batch[ITEM])
        fatal = np.array([b""] * rows, dtype=object)
        stats = batch_stats(batch)
        if any(batch.get(FATAL, ())):  # a stage before this one stopped: pass the error on
            return {ITEM: batch[ITEM], STATS: _first_row(stats, rows), FATAL: batch[FATAL]}
        try:
            if self.error is not None:
                raise self.error
            before = self._counters()
            items = self.stage([load(data) for data in batch[ITEM]])
            spent = self._counters()
        except Exception as error:  # noqa: BLE001 - handed to the driver, which raises it
            if rows:
                fatal[0] = pack_error(error)
            return {ITEM: batch[ITEM], STATS: _first_row(stats, rows), FATAL: fatal}
        spent.subtract(before)
        stats.update(spent)
        return {ITEM: np.array([dump(item) for item in items], dtype=object), STATS: _first_row(stats, len(items)), FATAL: fatal}


def _first_row(stats: Counter, rows: int) -> Any:
    import numpy as np

    column = np.full(rows, "", dtype=object)
    if rows:
        column[0] = json.dumps({key: value for key, value in stats.items() if value})
    return column


def _quiet_loading() -> None:
    """No weight-loading progress bars from the actors: the driver shows the run's progress, in probes."""
    import diffusers
    import transformers

    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.disable_progress_bar()


class _RayDataNotices(logging.Filter):
    """Drops Ray Data's per-execution notices (execution started/finished, progress bars off) below warnings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING and "Progress bars disabled" not in record.getMessage()


@contextmanager
def _ray_data_quiet() -> Iterator[None]:
    loggers = [logging.getLogger("ray.data"), logging.getLogger("ray")]
    handlers = {handler for logger in loggers for handler in logger.handlers}
    notices = _RayDataNotices()
    for handler in handlers:
        handler.addFilter(notices)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(notices)


def actor_class(spec: StageSpec) -> type:
    """A subclass of :class:`StageActor` named after the stage, so Ray's operators and logs say which stage is which."""
    return type(f"Stage[{spec.name}]", (StageActor,), {"__module__": StageActor.__module__})


# -- the engine -----------------------------------------------------------------------------------
class RayEngine:
    def __init__(self, options: EngineOptions):
        require_ray()  # before the run takes its output folder
        self.options = options
        self.config = EngineConfig(engine="ray", **options.arguments)

    def run(self, plan: AuditPlan, sources: Iterable[SourceItem], store: AuditStore, total: int | None = None) -> RunStats:
        ray = require_ray()
        pools = pool_sizes(plan.stages, self.config)
        stats = RunStats()
        started = time.perf_counter()
        owned = False
        try:
            owned = self._connect(ray)
            check_fits(pools, ray.cluster_resources(), strict=owned)
            done = store.done_probe_ids()
            dataset, queued = self._read(ray, plan, sources, store, done, stats)
            if dataset is not None:
                dataset = self._stages(ray, plan, dataset, pools)
                self._write(plan, dataset, store, queued, stats, started)
        finally:
            stats.seconds = time.perf_counter() - started
            if owned:
                ray.shutdown()
        return stats

    def _connect(self, ray: Any) -> bool:
        """Join the running Ray (this process's, or --ray-address), or start a local instance; True when this run must shut it down."""
        if ray.is_initialized():
            return False
        if self.config.ray_address:
            ray.init(address=self.config.ray_address, logging_level=logging.WARNING)
        else:
            ray.init(num_cpus=self.config.ray_num_cpus, include_dashboard=False, logging_level=logging.WARNING)
        return True

    def _read(
        self, ray: Any, plan: AuditPlan, sources: Iterable[SourceItem], store: AuditStore, done: set[str], stats: RunStats
    ) -> tuple[Any, int]:
        """The pool's work items not yet done, as one Ray dataset (None when there is nothing to do), and how many."""
        parts, queued, seen = [], 0, set(done)
        size = self.config.ray_batch_size
        for window in batched(sources, WINDOW_IMAGES):
            issues = [Issue(item.source_id, "*", "input", item.message, item.fix) for item in window if isinstance(item, SourceIssue)]
            store.add_issues(issues)
            stats.issues += len(issues)
            items, skipped = plan.work_items([item for item in window if isinstance(item, SourceImage)], seen)
            stats.skipped_done += skipped
            items = [item for item in items if not (item.probe_id in seen or seen.add(item.probe_id))]  # a pool listing an image twice
            if items:
                rows = [{ITEM: dump(item)} for item in items]
                parts.append(ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / size)))
                queued += len(items)
        if not parts:
            return None, 0
        return (parts[0].union(*parts[1:]) if len(parts) > 1 else parts[0]), queued

    def _stages(self, ray: Any, plan: AuditPlan, dataset: Any, pools: dict[str, Pool]) -> Any:
        for spec in plan.stages:
            pool = pools[spec.name]
            dataset = dataset.map_batches(
                actor_class(spec),
                fn_constructor_kwargs={"spec": spec},
                compute=ray.data.ActorPoolStrategy(size=pool.actors),
                num_cpus=pool.cpus,
                num_gpus=pool.gpus,
                batch_size=self.config.ray_batch_size,
                batch_format="numpy",
                zero_copy_batch=True,
            )
        return dataset

    def _write(self, plan: AuditPlan, dataset: Any, store: AuditStore, queued: int, stats: RunStats, started: float) -> None:
        """Stream the finished items back; write their records into the store as they arrive."""
        context = dataset.context  # this dataset's own copy of Ray Data's settings
        context.enable_progress_bars = False  # the engine shows its own, in probes
        context.print_on_execution_start = False
        context.enable_auto_log_stats = False
        shard_rows = max(1, self.options.batch_size * len(plan.modes) * plan.probes_per_image)
        pending: list[AuditRecord] = []
        written: set[str] = set()
        busy: Counter = Counter()
        progress = tqdm(total=queued, unit="probe", desc="audit (ray)", disable=not self.options.progress)

        def flush() -> None:
            shard = store.write_shard(pending)
            if shard is not None:
                stats.shards.append(shard.name)
            stats.written += len(pending)
            stats.failures += sum(record.verdict.is_failure for record in pending)
            pending.clear()

        try:
            with _ray_data_quiet():
                for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                    busy.update(batch_stats(batch))
                    error = batch_error(batch)
                    if error is not None:
                        raise error
                    items = [load(data) for data in batch[ITEM]]
                    if not stats.first_results_seconds:
                        stats.first_results_seconds = time.perf_counter() - started
                    records, issues = outcomes(items, plan.run_id)
                    fresh = [record for record in records if record.probe.probe_id not in written]  # Ray may re-run a batch
                    written.update(record.probe.probe_id for record in fresh)
                    pending.extend(fresh)
                    store.add_issues(issues)
                    stats.issues += len(issues)
                    if len(pending) >= shard_rows:
                        flush()
                    progress.update(len(items))
                    progress.set_postfix(probes=stats.written + len(pending), resumed=stats.skipped_done)
        finally:
            flush()  # finished records are kept, whatever stopped the run
            progress.close()
            stats.answer_cache_hits = int(busy.pop("cache_hits", 0))
            stats.answer_cache_misses = int(busy.pop("cache_misses", 0))
            stats.busy_seconds = {kind: float(seconds) for kind, seconds in busy.items()}
