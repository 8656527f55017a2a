"""Engines run an :class:`~auditdm_eval.plan.AuditPlan` over an image pool into an audit store.

An engine is the only part that knows about order, batching across stages and the store:
``local`` chains the stages in this process; ``ray`` runs each stage as a Ray Data actor pool.
Both write the same records (same probe ids, answers and verdicts) and resume the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ..config import option
from ..plan import AuditPlan
from ..registry import Registry
from ..sources import SourceItem
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
            raise ValueError("--ray-actors and --ray-batch-size must be at least 1")

    def arguments(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if key != "engine"}


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
