"""``auditdm train-auditor``: train the auditor with trl's ``GRPOTrainer``, the audit's own verdict
as the reward (supplement A.2).

One parser reads four dataclasses, each field declared once: the audit's own
:class:`~auditdm_eval.config.AuditConfig` (target, references, image pool, modes, judge, renderers:
what the auditor is trained against), :class:`AuditorTrainingArguments` (the reward terms), trl's
``GRPOConfig`` (every training argument: steps, learning rate, schedule, generations per prompt,
KL beta, loss type, reward weights, checkpoints) and trl's ``ModelConfig`` (LoRA). A recipe is a
YAML of field: value (``recipes/configs/auditor_*.yaml``); any field is a flag too.

Each row of the training set is one image of the pool and one mode, with the auditor's
instruction for that mode (the prompt variant's p_q, p_c or p_e). The policy's completion is the
question, caption or edit command; the reward terms (:mod:`.rewards`) run the audit's stages on it.
Checkpoints (``save_steps``) hold the processor too, so each loads back through ``model_adapters``
and audits like any model: ``auditdm audit --auditor <output_dir>/checkpoint-250``. The same command
run again resumes an interrupted run from its last whole checkpoint (:mod:`.resume`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import AuditConfig, option
from ..errors import ConfigError
from ..modes import MODES
from ..parsing import DescriptionAndDefaultsFormatter, build, make_layered_parser
from ..prompts import PROMPT_VARIANTS
from .resume import (
    StartingPoint,
    TrainingFolder,
    finished_steps,
    reloading_checkpoints_with_from_pretrained,
    trainer_settings,
)
from .rewards import TERMS

logger = logging.getLogger(__name__)

RUN_FILE = "auditor_training_run.json"  # which run an output_dir holds (see .resume)
RECORD = "auditor_training.json"  # a finished run: its settings, steps and log history
INSTRUCTION = {None: "question", "caption": "caption", "edit": "edit"}  # what the auditor writes -> its prompt field
GRPO_DEFAULTS: dict[str, Any] = {
    # what our recipes rely on when a recipe says nothing (trl's own defaults otherwise)
    "output_dir": "outputs/auditor",
    "logging_steps": 10,
    "report_to": [],
    "save_strategy": "steps",
    "save_steps": 250,
    "max_completion_length": 96,
    "remove_unused_columns": False,
}


@dataclass
class AuditorTrainingArguments:
    reward_terms: list[str] = option(
        list(TERMS), f"reward terms, each logged under its name ({', '.join(TERMS)}); their weights are --reward_weights, in this order"
    )
    novelty_window: int = option(
        0, "novelty counts a text's repeats over its batch and this many probes of earlier batches (0: the batch alone)"
    )

    def __post_init__(self) -> None:
        unknown = [term for term in self.reward_terms if term not in TERMS]
        if unknown or not self.reward_terms:
            raise ConfigError(f"--reward_terms: unknown or none {unknown}; choose from {', '.join(TERMS)}")
        if self.novelty_window < 0:
            raise ConfigError(f"--novelty_window must be 0 (the batch alone) or more probes (got {self.novelty_window})")


@dataclass
class TrainingRun:
    config: AuditConfig
    training: AuditorTrainingArguments
    grpo: Any  # trl.GRPOConfig
    model: Any  # trl.ModelConfig


def training_types() -> list[type]:
    from trl import GRPOConfig, ModelConfig

    return [AuditConfig, AuditorTrainingArguments, GRPOConfig, ModelConfig]


def parse(argv: list[str], values: dict[str, Any] | None = None) -> TrainingRun:
    from trl import GRPOConfig, ModelConfig

    parser = make_layered_parser(
        training_types(),
        groups={
            AuditConfig: "what the auditor is trained against (the flags of `auditdm audit`)",
            AuditorTrainingArguments: "reward", GRPOConfig: "GRPO (trl's GRPOConfig)", ModelConfig: "LoRA (trl's ModelConfig)",
        },
        prog="auditdm train-auditor", description=__doc__, formatter_class=DescriptionAndDefaultsFormatter,
    )
    parser.layer(GRPO_DEFAULTS, "auditdm's training defaults", explicit=False)
    parsed = parser.parse(argv, values)
    derive_device_settings(parsed, parser.explicit)
    return TrainingRun(
        build(AuditConfig, parsed), build(AuditorTrainingArguments, parsed), build(GRPOConfig, parsed), build(ModelConfig, parsed)
    )


def derive_device_settings(values: dict[str, Any], explicit: dict[str, str]) -> None:
    """bf16 and use_cpu follow the machine unless a recipe or a flag set them."""
    import torch

    cuda = torch.cuda.is_available()
    if "use_cpu" not in explicit:
        values["use_cpu"] = not cuda
    if "bf16" not in explicit:
        values["bf16"] = bool(cuda and torch.cuda.is_bf16_supported())
    elif values["bf16"] and not cuda:
        raise ConfigError(f"bf16 is set ({explicit['bf16']}) but no GPU is visible: drop it or set --bf16 false")


def instruction(variant: str, mode: str) -> str:
    return getattr(PROMPT_VARIANTS.build(variant), INSTRUCTION[MODES[mode].auditor_writes])


def training_rows(config: AuditConfig) -> list[dict[str, Any]]:
    """One row per (pool image, mode): the auditor's conversational instruction and the image."""
    from ..runner import source_options
    from ..sources import SourceImage, iter_sources

    rows = []
    for item in iter_sources(config.images, source_options(config)):
        if not isinstance(item, SourceImage):
            logger.warning("skipping %s", item)
            continue
        for mode in config.modes:
            rows.append({
                "prompt": [{"role": "user", "content": instruction(config.prompt_variant, mode)}],
                "image": item.image,
                "mode": mode,
                "source_id": item.source_id,
                "question": item.question,
            })
    if not rows:
        raise ConfigError(f"--images {config.images} gave no usable image to train on")
    return rows


def policy_dtype(config: AuditConfig, model_args: Any):
    """The policy's weights: --dtype when given; with auto, float32 for weights being trained (small updates
    vanish in bfloat16; --bf16 autocasts the compute), and for LoRA's frozen base the audit's own choice
    (bfloat16 on a GPU that has it, else float32; peft keeps the adapters in float32)."""
    from model_adapters.transformers_backend import resolve_device, resolve_dtype

    requested = "float32" if config.dtype == "auto" and not model_args.use_peft else config.dtype
    return resolve_dtype(requested, resolve_device(config.device))


def load_policy(config: AuditConfig, model_args: Any):
    """The auditor to train, from a registered name, a local path or a Hub id (as `auditdm audit` loads it)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from model_adapters import resolve

    path = resolve(config.auditor)[0]
    processor = AutoProcessor.from_pretrained(path, trust_remote_code=config.trust_remote_code)
    processor.tokenizer.padding_side = "left"
    kwargs: dict[str, Any] = {"trust_remote_code": config.trust_remote_code, "dtype": policy_dtype(config, model_args)}
    if getattr(model_args, "attn_implementation", None):
        kwargs["attn_implementation"] = model_args.attn_implementation
    model = AutoModelForImageTextToText.from_pretrained(path, **kwargs)
    return model, processor


@dataclass
class TrainedAuditor:
    output_dir: Path
    steps: int
    log_history: list[dict[str, Any]]
    start: StartingPoint = field(default_factory=StartingPoint)  # where this call began: a checkpoint it resumed, or a finished run

    def reward_curve(self, term: str = "disagreement") -> list[tuple[int, float]]:
        key = f"rewards/{term}/mean"
        return [(int(entry["step"]), float(entry[key])) for entry in self.log_history if key in entry]


def run_settings(run: TrainingRun) -> dict[str, Any]:
    """What a training run is: the audit it is trained against, the reward, GRPO and LoRA settings."""
    from dataclasses import asdict

    return {
        "audit": run.config.identity(), "reward_terms": run.training.reward_terms, "grpo": trainer_settings(run.grpo),
        "model": asdict(run.model),
        # left out at 0, so that runs made before the setting existed still resume
        **({"novelty_window": run.training.novelty_window} if run.training.novelty_window else {}),
    }


def train_auditor(run: TrainingRun, announce: Callable[[str], None] = logger.info) -> TrainedAuditor:
    """Train, resuming the same run from the last whole checkpoint in ``output_dir`` (see :mod:`.resume`);
    ``announce`` is told where the run starts before it trains."""
    config, grpo = run.config, run.grpo
    config.check_ready()
    weights = grpo.reward_weights
    if weights is not None and len(weights) != len(run.training.reward_terms):
        raise ConfigError(
            f"--reward_weights has {len(weights)} weight(s) for {len(run.training.reward_terms)} reward term(s) "
            f"{run.training.reward_terms}: give one weight per term, in the same order"
        )
    settings = run_settings(run)
    with TrainingFolder(grpo.output_dir, "train-auditor", RUN_FILE, RECORD) as folder:
        start = folder.start(
            settings, grpo.max_steps, grpo.num_train_epochs, overwrite=config.overwrite, checkpoint=grpo.resume_from_checkpoint,
        )
        announce(f"{folder.root}: {start.describe()}")
        if start.finished is not None:
            record = start.finished
            return TrainedAuditor(folder.root, finished_steps(record), list(record.get("log_history", [])), start)
        import torch

        trainer = build_trainer(run)
        with torch.enable_grad():  # some harness imports (vlmeval) switch autograd off process-wide
            trainer.train(resume_from_checkpoint=start.resume_from)
        trainer.save_model(str(folder.root))
        trainer.processing_class.save_pretrained(str(folder.root))
        folder.finish(settings, trainer.state)
        return TrainedAuditor(folder.root, int(trainer.state.global_step), list(trainer.state.log_history), start)


def build_trainer(run: TrainingRun):
    """trl's GRPOTrainer for ``run``: the policy loaded from --auditor, the reward terms running the audit's
    stages, the placeholder ids masked in the scored heads. ``train_auditor`` trains it; benchmarks time it."""
    import datasets
    from trl import GRPOTrainer, get_peft_config

    from model_adapters.transformers_backend import placeholder_token_ids

    from ..reward import AuditReward
    from ..runner import build_plan
    from .guards import finite_gradient_guard
    from .placeholders import mask_placeholders
    from .rewards import RewardTerms, failure_logger

    config, grpo = run.config, run.grpo
    rows = training_rows(config)
    if len(rows) < grpo.num_generations:
        raise ConfigError(f"{len(rows)} training row(s) for --num_generations {grpo.num_generations}: use a larger --images pool")
    plan = build_plan(config)
    terms = RewardTerms(AuditReward(plan, config.modes[0]), run.training.novelty_window)
    model, processor = load_policy(config, run.model)
    trainer_class = reloading_checkpoints_with_from_pretrained(GRPOTrainer, run.model.use_peft, config.trust_remote_code)
    trainer = trainer_class(
        model=model,
        reward_funcs=terms.terms(run.training.reward_terms),
        args=grpo,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=processor,
        peft_config=get_peft_config(run.model),
        callbacks=[failure_logger(terms), finite_gradient_guard(grpo.output_dir)],
    )
    placeholders = placeholder_token_ids(model.config)
    for scored in (trainer.model, trainer.ref_model):  # a LoRA run's reference is the same head, adapters off
        if scored is not None:
            mask_placeholders(scored.get_base_model() if hasattr(scored, "get_base_model") else scored, placeholders)
    return trainer


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The checkpoints a training run saved (``checkpoint-<step>``), in step order."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


