"""Turn an audit config into a plan of stages, run it with an engine, and summarise what it wrote."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from model_adapters import GenerationSettings, resolve
from model_adapters.transformers_backend import local_fingerprint

from .cache import content_key
from .config import AuditConfig, default_cache_dir
from .engines import ENGINES, EngineOptions, RunStats
from .errors import ConfigError
from .modes import alters_image
from .plan import AuditPlan
from .registry import part
from .renderers import RenderSettings
from .resources import ModelRef
from .sources import SourceItem, SourceOptions, iter_sources
from .stages import StageSpec
from .stages.annotate import AnnotateSpec
from .stages.answer import AnswerSpec
from .stages.auditor import AuditorSpec
from .stages.judge import JudgeSpec
from .stages.render import RenderSpec
from .store import MANIFEST, AuditStore, Issue, summarize

logger = logging.getLogger(__name__)


@dataclass
class AuditResult:
    out: Path
    stats: RunStats
    summary: dict[str, Any]
    resumed: bool
    skipped_inputs: list[Issue] = field(default_factory=list)  # the pool's unusable files, in the order met
    moved_aside: list[Path] = field(default_factory=list)  # corrupt shards found on resume (their probes were redone)

    @property
    def answer_cache_hits(self) -> int:
        return self.stats.answer_cache_hits

    @property
    def answer_cache_misses(self) -> int:
        return self.stats.answer_cache_misses


def weights_of(name: str) -> str:
    """What identifies a model's weights without loading it: a local checkpoint's files, else its name."""
    path = Path(resolve(name)[0])
    return local_fingerprint(path) if path.is_dir() else str(path)


def run_identity(config: AuditConfig) -> dict[str, Any]:
    """What an audit folder's manifest holds to tell its run: the settings, and the fingerprint of each model
    given as a local checkpoint folder, so that a checkpoint trained on in place (same path, new weights)
    starts another run instead of resuming the old probes. (Registered and Hub names name fixed weights.)"""
    names = dict.fromkeys(name for name in (config.auditor, config.target, *config.references) if name)
    weights = {name: weights_of(name) for name in names if Path(name).is_dir()}
    if weights and not config.overwrite and _legacy_run(Path(config.out)):
        weights = {}  # a run made before fingerprints were kept still resumes, as it always did
    return {**config.identity(), **({"weights": weights} if weights else {})}


def _legacy_run(out: Path) -> bool:
    manifest = out / MANIFEST
    return manifest.exists() and "weights" not in json.loads(manifest.read_text())["identity"]


def check_models(config: AuditConfig) -> None:
    """Fail early, before anything loads, on model lists that cannot make a valid audit."""
    if not config.references:
        raise ConfigError("no reference model: pass --ensemble m1,m2,... or --reference <model>")
    if len(set(config.references)) != len(config.references):
        raise ConfigError(f"the ensemble lists a model twice: {config.references}; list each reference once")
    target = weights_of(config.target)
    for reference in config.references:
        if reference == config.target or weights_of(reference) == target:
            raise ConfigError(
                f"the target {config.target!r} is listed inside its own ensemble (as {reference!r}, the same weights): "
                "the reference ensemble must exclude the target. Drop it from --ensemble."
            )


def cache_paths(config: AuditConfig) -> tuple[str | None, str | None]:
    """The answer cache file and the render cache folder (None, None when caching is off)."""
    if config.no_cache:
        return None, None
    root = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    return str(root / "answers.sqlite"), str(root / "renders")


def build_plan(config: AuditConfig) -> AuditPlan:
    """The stages an audit with ``config`` runs, in order, each from a picklable spec."""
    check_models(config)
    answers, renders = cache_paths(config)

    def model(name: str) -> ModelRef:
        return ModelRef(name, config.dtype, config.device, config.model_batch_size, config.trust_remote_code)

    sampling = config.samples_auditor
    auditor_settings = GenerationSettings(
        max_new_tokens=config.auditor_max_new_tokens,
        temperature=(config.auditor_temperature or 1.0) if sampling else 0.0,
        top_p=(config.auditor_top_p or 0.95) if sampling else 1.0,
    )
    answer_settings = GenerationSettings(max_new_tokens=config.answer_max_new_tokens)

    def auditor(writes: str) -> AuditorSpec:
        return AuditorSpec(model(config.auditor), writes, config.prompt_variant, auditor_settings, answers, config.source_questions)

    altering = [mode for mode in config.modes if alters_image(mode)]
    stages: list[StageSpec] = []
    if altering:
        stages.append(auditor("alteration"))
    for mode in altering:
        regenerate = mode == "regenerate"
        settings = RenderSettings(
            height=config.render_size,
            width=config.render_size,
            num_inference_steps=config.render_steps,
            guidance_scale=config.regenerate_guidance if regenerate else config.edit_guidance,
            dtype=config.dtype,
            device=config.device,
            batch_size=config.render_batch_size,
        )
        backend = config.regenerate_renderer if regenerate else config.edit_renderer
        stages.append(RenderSpec(mode, backend, config.regenerate_model if regenerate else config.edit_model, settings, renders))
    stages.append(auditor("question"))
    stages.append(AnswerSpec(model(config.target), "target", answer_settings, answers))
    stages.extend(AnswerSpec(model(name), "reference", answer_settings, answers) for name in config.references)
    matcher_model = config.matcher_model or (config.auditor if config.matcher == "judge" else None)
    stages.append(JudgeSpec(config.matcher, model(matcher_model) if matcher_model else None, config.agreement_rule, config.reward))
    if config.annotator:
        stages.append(AnnotateSpec(config.annotator))
    parts = {"source": part(config.images, split=config.split), **{spec.name: spec.part() for spec in stages}}
    return AuditPlan(
        run_id=content_key(**config.identity())[:12],
        modes=tuple(config.modes),
        stages=tuple(stages),
        auditor_id=config.auditor,
        prompt_variant=config.prompt_variant,
        probes_per_image=config.probes_per_image,
        seed=config.seed,
        parts=parts,
    )


def source_options(config: AuditConfig) -> SourceOptions:
    answers, _ = cache_paths(config)
    return SourceOptions(
        hash_memo=answers,  # the answer cache's file also remembers the pixel hashes of decoded image files
        split=config.split,
        image_column=config.image_column,
        question_column=config.question_column,
        answer_column=config.answer_column,
        id_column=config.id_column,
        limit=config.limit,
        min_side=config.min_image_side,
        max_pixels=config.max_image_pixels,
    )


def first_drawn(items: Iterable[SourceItem]) -> Iterator[SourceItem]:
    """``items`` with its first element already drawn: a pool that cannot be read at all (a bad spec, a
    missing dataset) fails before the run touches --out."""
    items = iter(items)
    try:
        first = next(items)
    except StopIteration:
        return iter(())
    return itertools.chain([first], items)


def run_audit(config: AuditConfig, engine: str = "local", engine_arguments: dict[str, Any] | None = None) -> AuditResult:
    config.check_ready()
    plan = build_plan(config)
    runner = ENGINES.build(
        engine, options=EngineOptions(config.batch_size, config.progress, dict(engine_arguments or {}))
    )
    sources = first_drawn(iter_sources(config.images, source_options(config)))
    with AuditStore(config.out) as store:  # the run owns --out until it ends
        resumed = store.open(run_identity(config), overwrite=config.overwrite)
        store.record_parts(plan.parts)
        stats = runner.run(plan, sources, store)
        summary = summarize(store.load()) if store.shards() else {"probes": 0, "failures": 0, "per_mode": {}}
        summary["issues"] = len(store.issues())
        summary["config"] = config.identity()
        store.write_summary(summary)
        skipped = store.skipped_inputs()
        moved = list(store.moved_aside)
    return AuditResult(Path(config.out), stats, summary, resumed, skipped, moved)
