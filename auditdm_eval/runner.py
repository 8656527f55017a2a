"""Build the pipeline a config describes, run it, and summarise what it wrote."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model_adapters import GenerationSettings, VisionLanguageModel, load_model, resolve

from .answering import CachedGenerator
from .auditor import Auditor
from .cache import AnswerCache, RenderCache, content_key
from .config import AuditConfig, default_cache_dir
from .judge import DisagreementReward, Judge
from .matching import build_matcher
from .pipeline import MODES, AuditPipeline, RunStats
from .prompts import get_prompts
from .renderers import RENDERERS, CachedRenderer, RenderSettings
from .sources import SourceOptions, iter_sources
from .store import AuditStore, summarize

logger = logging.getLogger(__name__)


class ConfigError(ValueError):
    pass


@dataclass
class AuditResult:
    out: Path
    stats: RunStats
    summary: dict[str, Any]
    resumed: bool
    answer_cache_hits: int
    answer_cache_misses: int


def check_models(config: AuditConfig) -> None:
    """Fail early, before anything loads, on model lists that cannot make a valid audit."""
    if not config.references:
        raise ConfigError("no reference model: pass --ensemble m1,m2,... or --reference <model>")
    if len(set(config.references)) != len(config.references):
        raise ConfigError(f"the ensemble lists a model twice: {config.references}; list each reference once")
    target_path = resolve(config.target)[0]
    for reference in config.references:
        if reference == config.target or resolve(reference)[0] == target_path:
            raise ConfigError(
                f"the target {config.target!r} is listed inside its own ensemble (as {reference!r}): the "
                "reference ensemble must exclude the target. Drop it from --ensemble."
            )


class ModelPool:
    """Loads each distinct model once, even when it plays several roles."""

    def __init__(self, config: AuditConfig):
        self.config = config
        self._models: dict[str, VisionLanguageModel] = {}

    def get(self, name: str) -> VisionLanguageModel:
        if name not in self._models:
            logger.info("loading %s", name)
            self._models[name] = load_model(
                name,
                dtype=self.config.dtype,
                device=self.config.device,
                batch_size=self.config.model_batch_size,
                trust_remote_code=self.config.trust_remote_code,
            )
        return self._models[name]


def build_pipeline(config: AuditConfig, store: AuditStore, answer_cache: AnswerCache, render_cache: RenderCache) -> AuditPipeline:
    check_models(config)
    pool = ModelPool(config)
    target = CachedGenerator(pool.get(config.target), answer_cache)
    references = [CachedGenerator(pool.get(name), answer_cache) for name in config.references]
    for reference in references:
        if reference.model.fingerprint == target.model.fingerprint:
            raise ConfigError(
                f"reference {reference.model_id!r} has the same weights as the target {config.target!r}: "
                "the ensemble must exclude the target"
            )
    sampling = config.auditor_sampling or config.probes_per_image > 1
    auditor_settings = GenerationSettings(
        max_new_tokens=config.auditor_max_new_tokens, temperature=1.0 if sampling else 0.0, top_p=0.95 if sampling else 1.0
    )
    auditor = Auditor(
        CachedGenerator(pool.get(config.auditor), answer_cache), get_prompts(config.prompt_variant), config.prompt_variant,
        auditor_settings,
    )
    renderers = {}
    for mode in config.modes:
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; choose from: {', '.join(MODES)}")
        if MODES[mode].auditor_writes is None:
            continue
        name = config.regenerate_model if mode == "regenerate" else config.edit_model
        settings = RenderSettings(
            height=config.render_size,
            width=config.render_size,
            num_inference_steps=config.render_steps,
            guidance_scale=config.regenerate_guidance if mode == "regenerate" else config.edit_guidance,
            dtype=config.dtype,
            device=config.device,
            batch_size=config.render_batch_size,
        )
        renderers[mode] = CachedRenderer(RENDERERS[mode](name, settings), render_cache)
    matcher_kwargs: dict[str, Any] = {}
    if config.matcher == "embedding" and config.matcher_model:
        matcher_kwargs["model"] = config.matcher_model
    if config.matcher == "judge":
        matcher_kwargs["adapter"] = pool.get(config.matcher_model or config.auditor)
    judge = Judge(build_matcher(config.matcher, **matcher_kwargs), config.agreement_rule, DisagreementReward(config.reward))
    return AuditPipeline(
        auditor=auditor,
        target=target,
        references=references,
        renderers=renderers,
        judge=judge,
        store=store,
        modes=config.modes,
        run_id=content_key(**config.identity())[:12],
        seed=config.seed,
        probes_per_image=config.probes_per_image,
        use_source_questions=config.use_source_questions,
        batch_size=config.batch_size,
        show_progress=config.show_progress,
        answer_settings=GenerationSettings(max_new_tokens=config.answer_max_new_tokens),
    )


def run_audit(config: AuditConfig) -> AuditResult:
    check_models(config)
    sources = iter_sources(
        config.images,
        SourceOptions(
            split=config.split,
            image_column=config.image_column,
            question_column=config.question_column,
            answer_column=config.answer_column,
            id_column=config.id_column,
            limit=config.limit,
            min_side=config.min_image_side,
        ),
    )
    store = AuditStore(config.out)
    resumed = store.open(config.identity(), overwrite=config.overwrite)
    cache_dir = None if config.no_cache else Path(config.cache_dir) if config.cache_dir else default_cache_dir()
    answer_cache = AnswerCache(cache_dir / "answers.sqlite" if cache_dir else None)
    render_cache = RenderCache(cache_dir / "renders" if cache_dir else None)
    try:
        pipeline = build_pipeline(config, store, answer_cache, render_cache)
        stats = pipeline.run(sources)
    finally:
        hits, misses = answer_cache.hits, answer_cache.misses
        answer_cache.close()
    summary = summarize(store.load()) if store.shards() else {"probes": 0, "failures": 0, "per_mode": {}}
    summary["issues"] = len(store.issues())
    summary["config"] = config.identity()
    store.write_summary(summary)
    return AuditResult(Path(config.out), stats, summary, resumed, hits, misses)
