"""Engines run an :class:`~auditdm_eval.plan.AuditPlan` over an image pool into an audit store.

An engine is the only part that knows about order, batching across stages and the store:
``local`` chains the stages in this process; ``ray`` runs each stage as a Ray Data actor pool.
Both write the same records (same probe ids, answers and verdicts) and resume the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..config import option
from ..errors import ConfigError
from ..registry import Registry
from ..sources import SourceItem

if TYPE_CHECKING:  # the audit's --help builds its parser from EngineConfig without loading datasets
    from ..plan import AuditPlan
    from ..store import AuditStore


@dataclass
class RunStats:
    written: int = 0
    skipped_done: int = 0
    issues: int = 0
    failures: int = 0
    shards: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the audit loop, model loading included only where it happens lazily
    busy_seconds: dict[str, float] = field(default_factory=dict)  # inside model / renderer calls, by kind
    answer_cache_hits: int = 0
    answer_cache_misses: int = 0
    first_results_seconds: float = 0.0  # until the first finished probes reached the engine (Ray: its start included)

    @property
    def overhead(self) -> float:
        """Share of the loop spent outside model and renderer calls."""
        return 1.0 - sum(self.busy_seconds.values()) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class EngineOptions:
    batch_size: int = 8  # source images per batch (the local engine writes one shard per batch)
    progress: bool = True
    arguments: dict[str, Any] = field(default_factory=dict)  # the engine's own (e.g. ray address, actors per stage)


@dataclass
class EngineConfig:
    """How to run an audit: which engine, and its resources. None of it changes what the run writes."""

    engine: str = option("local", "local (stages chained in this process) or ray (Ray Data actor pools)")
    ray_address: str | None = option(None, "Ray cluster to join (auto: the running one); default: start a local Ray instance")
    ray_num_cpus: int | None = option(None, "CPUs of a local Ray instance (default: all)")
    ray_actors: int = option(1, "actors per model stage")
    ray_cpus_per_actor: float = option(0.25, "CPUs each model-stage actor reserves")
    ray_gpus_per_actor: float = option(0.0, "GPUs each model-stage actor reserves (e.g. 1, or 0.5 to pack two per GPU)")
    ray_stage_resources: list[str] = option(
        [], "per-stage overrides, <stage prefix>=<actors>[:<gpus>[:<cpus>]], e.g. answer:target=2:1 render:edit=1:1"
    )
    ray_batch_size: int = option(8, "work items per Ray batch")

    def __post_init__(self) -> None:
        ENGINES.get(self.engine)
        if self.ray_actors < 1 or self.ray_batch_size < 1:
            raise ConfigError("--ray-actors and --ray-batch-size must be at least 1")
        if self.ray_cpus_per_actor < 0 or self.ray_gpus_per_actor < 0:
            raise ConfigError("--ray-cpus-per-actor and --ray-gpus-per-actor cannot be negative")
        if self.ray_num_cpus is not None and self.ray_num_cpus < 1:
            raise ConfigError("--ray-num-cpus must be at least 1")
        stage_overrides(self.ray_stage_resources)

    def arguments(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key != "engine"}


@dataclass(frozen=True)
class PoolOverride:
    """One ``--ray-stage-resources`` entry: the actors of the stages whose name starts with ``prefix``."""

    prefix: str
    actors: int
    gpus: float | None = None  # None: --ray-gpus-per-actor (model stages) or 0
    cpus: float | None = None  # None: --ray-cpus-per-actor


def stage_overrides(entries: Iterable[str]) -> list[PoolOverride]:
    """Parse ``<stage prefix>=<actors>[:<gpus>[:<cpus>]]`` entries (e.g. ``answer:target=2:1``)."""
    overrides = []
    for entry in entries:
        prefix, sep, value = entry.partition("=")
        parts = value.split(":")
        try:
            if not sep or not prefix.strip() or not 1 <= len(parts) <= 3:
                raise ValueError
            actors = int(parts[0])
            gpus = float(parts[1]) if len(parts) > 1 and parts[1] else None
            cpus = float(parts[2]) if len(parts) > 2 and parts[2] else None
            if actors < 1 or (gpus is not None and gpus < 0) or (cpus is not None and cpus < 0):
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"--ray-stage-resources: cannot read {entry!r}; write <stage prefix>=<actors>[:<gpus>[:<cpus>]] with "
                "at least one actor, e.g. answer:target=2:1 (two actors of one GPU each) or judge=1:0:0.5"
            ) from None
        overrides.append(PoolOverride(prefix.strip(), actors, gpus, cpus))
    return overrides


class Engine(Protocol):
    def run(self, plan: AuditPlan, sources: Iterable[SourceItem], store: AuditStore, total: int | None = None) -> RunStats: ...


ENGINES: Registry[Engine] = Registry("engine", "auditdm.engines")
"""Engine factories by name; a factory takes :class:`EngineOptions`."""


@ENGINES.register("local")
def _local(options: EngineOptions) -> Engine:
    from .local import LocalEngine

    return LocalEngine(options)


@ENGINES.register("ray")
def _ray(options: EngineOptions) -> Engine:
    from .ray_engine import RayEngine

    return RayEngine(options)
