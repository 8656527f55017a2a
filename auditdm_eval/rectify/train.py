"""Run a fine-tuning recipe: audited pairs (+ original data) -> trl SFTTrainer -> a checkpoint.

A recipe (:mod:`.recipe`) is ours (data, mixing, global batch size, LLM dropout, merge-LoRA), trl's
``SFTConfig`` and trl's ``ModelConfig``, parsed by one ``TrlParser``: a YAML file from
``recipes/configs/`` (``--config``), any field overridden by a flag. Multi-GPU and multi-node come
from ``accelerate launch`` with a config from ``recipes/accelerate/``; the global batch size is kept
by gradient accumulation.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import AuditDMError, ConfigError
from .mixing import mix, pairs_from_audit, pairs_from_original
from .recipe import Recipe, parse_recipe
from .sft_data import collator_for, rows_for

RUN_FILE = "rectify_run.json"  # which run an output_dir holds (see auditdm_eval.training.resume)
RECORD = "rectify_training.json"  # a finished run: its settings, steps, loss and log history


@dataclass
class RecipeResult:
    output_dir: Path
    train_loss: float
    steps: int
    examples: int
    generated: int
    original: int


def build_pairs(recipe: Recipe):
    import datasets

    from ..store import load_audited

    ours = recipe.rectify
    generated = [pair for source in ours.audited for pair in pairs_from_audit(load_audited(source), ours.selection)]
    original = []
    if ours.original_dataset:
        path = Path(ours.original_dataset)
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            loaded = loaded[ours.original_split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            loaded = datasets.load_dataset(ours.original_dataset, split=ours.original_split)
        if ours.original_limit:
            loaded = loaded.select(range(min(ours.original_limit, len(loaded))))
        original = pairs_from_original(
            loaded, ours.original_image_column, ours.original_question_column, ours.original_answer_column,
            ours.original_id_column, ours.original_split,
        )
    mixed = mix(original, generated, ours.generated_per_original, ours.generated_ratio, recipe.training.seed)
    if not mixed:
        raise ConfigError("no training pair: the audited data holds no selected probe and no original data was given")
    return mixed, sum(p.origin == "auditdm" for p in mixed), sum(p.origin == "original" for p in mixed)


def load_for_training(recipe: Recipe):
    """The model (base + adapter merged when the checkpoint is a LoRA adapter) and its processor.

    ModelConfig's ``model_revision``, ``attn_implementation`` and the derived ``dtype`` and SFTConfig's
    ``trust_remote_code`` and ``model_init_kwargs`` apply, as in trl's own ``sft`` script.
    """
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from model_adapters import resolve

    model_args, training = recipe.model, recipe.training
    path = resolve(model_args.model_name_or_path)[0]
    adapter_config = Path(path) / "adapter_config.json"
    base_path = json.loads(adapter_config.read_text())["base_model_name_or_path"] if adapter_config.exists() else path
    remote = {"trust_remote_code": training.trust_remote_code}
    revision = {"revision": model_args.model_revision} if not Path(base_path).exists() else {}
    config = AutoConfig.from_pretrained(base_path, **remote, **revision)
    text_config = getattr(config, "text_config", config)
    if hasattr(text_config, "attention_dropout"):
        text_config.attention_dropout = recipe.rectify.llm_dropout  # the paper's "LLM dropout"
    dtype = getattr(torch, model_args.dtype)
    kwargs = {"config": config, "dtype": dtype, **remote, **revision}
    if model_args.attn_implementation:
        kwargs["attn_implementation"] = model_args.attn_implementation
    kwargs.update(training.model_init_kwargs or {})
    model = AutoModelForImageTextToText.from_pretrained(base_path, **kwargs)
    if adapter_config.exists():  # a LoRA checkpoint (an earlier iteration): continue from base + adapter
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    processor = AutoProcessor.from_pretrained(path, **remote)
    return model, processor, dtype, adapter_config.exists()


def recipe_settings(recipe: Recipe) -> dict:
    """What a fine-tuning run is: our recipe fields, trl's SFTConfig and ModelConfig."""
    from dataclasses import asdict

    from ..training.resume import trainer_settings

    return {"rectify": asdict(recipe.rectify), "training": trainer_settings(recipe.training), "model": asdict(recipe.model)}


def run_recipe(recipe: Recipe, announce=lambda line: None) -> RecipeResult:
    """Fine-tune; an interrupted run of the same recipe into the same output_dir resumes from its last whole
    checkpoint, a finished one is not trained again (:mod:`auditdm_eval.training.resume`)."""
    from ..training.resume import TrainingFolder

    recipe.check_ready()
    args = recipe.training
    settings = recipe_settings(recipe)
    with TrainingFolder(args.output_dir, "recipes/sft.py", RUN_FILE, RECORD) as folder:
        start = folder.start(
            settings, args.max_steps, args.num_train_epochs, overwrite=recipe.rectify.overwrite, checkpoint=args.resume_from_checkpoint,
        )
        announce(f"{folder.root}: {start.describe()}")
        if start.finished is not None:
            done = start.finished
            return RecipeResult(folder.root, done["train_loss"], done["global_step"], done["examples"], done["generated"], done["original"])
        return _train(recipe, settings, folder, start.resume_from)


def _train(recipe: Recipe, settings: dict, folder, resume_from: str | None) -> RecipeResult:
    import datasets
    import torch
    from trl import SFTTrainer, get_peft_config

    from ..training.guards import finite_gradient_guard
    from ..training.resume import reloading_checkpoints_with_from_pretrained

    args = recipe.training
    pairs, generated, original = build_pairs(recipe)
    global_batch = args.per_device_train_batch_size * args.world_size * args.gradient_accumulation_steps
    if len(pairs) < global_batch:
        raise ConfigError(
            f"{len(pairs)} training pair(s) cannot fill one global batch of {global_batch}: audit more images "
            "or lower global_batch_size / per_device_train_batch_size"
        )
    model, processor, _, from_adapter = load_for_training(recipe)
    model_type = model.config.model_type
    train_dataset = datasets.Dataset.from_list(rows_for(pairs, model_type))
    trainer_class = reloading_checkpoints_with_from_pretrained(SFTTrainer, recipe.model.use_peft, args.trust_remote_code)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=processor,
        data_collator=collator_for(model_type, processor),
        peft_config=get_peft_config(recipe.model),
        callbacks=[finite_gradient_guard(folder.root)],
    )
    with torch.enable_grad():  # some harness imports (vlmeval) switch autograd off process-wide
        result = trainer.train(resume_from_checkpoint=resume_from)
    output_dir = folder.root
    if recipe.model.use_peft and (recipe.rectify.merge_lora or from_adapter):
        # an adapter over a merged base would not reload from the original base: save it whole
        trainer.model.merge_and_unload().save_pretrained(output_dir)
    else:
        trainer.save_model(str(output_dir))  # LoRA: the adapter; full: the whole model
    processor.save_pretrained(output_dir)
    (output_dir / "recipe.yaml").write_text(recipe.to_yaml())
    loss = float(result.training_loss)
    folder.finish(settings, trainer.state, train_loss=loss, examples=len(pairs), generated=generated, original=original)
    return RecipeResult(output_dir, loss, int(result.global_step), len(pairs), generated, original)


def report_errors(prog: str, run, *args) -> int:
    """Run ``run(*args)``; bad settings (the project's errors, unknown models, bad values, missing files) print their
    message alone, as ``auditdm`` does; ``AUDITDM_DEBUG=1`` shows the traceback. Ctrl-C exits 130 with one line."""
    from model_adapters import UnknownModelError

    try:
        return run(*args)
    except KeyboardInterrupt:
        print(
            f"{prog}: interrupted; what it finished is kept on disk (the same command run again resumes from the last "
            "checkpoint)", file=sys.stderr,
        )
        return 130
    except (AuditDMError, UnknownModelError, ValueError, FileNotFoundError) as error:
        if os.environ.get("AUDITDM_DEBUG"):
            raise
        print(f"{prog}: error: {error}\n(AUDITDM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2


def _main(argv: list[str]) -> int:
    recipe = parse_recipe(argv)
    result = run_recipe(recipe, announce=lambda line: print(line, file=sys.stderr, flush=True))
    print(
        f"trained {result.steps} step(s) on {result.examples} pairs ({result.generated} audited, {result.original} original); "
        f"loss {result.train_loss:.4f}; saved to {result.output_dir}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    return report_errors("recipes/sft.py", _main, list(sys.argv[1:] if argv is None else argv))
