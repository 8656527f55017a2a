"""Run a fine-tuning recipe: audited pairs (+ original data) -> trl SFTTrainer -> a checkpoint.

A recipe is a YAML file (``recipes/configs/``) with the paper's settings; any field can be
overridden on the command line. Multi-GPU and multi-node come from ``accelerate launch`` with a
config from ``recipes/accelerate/``; the global batch size is kept by gradient accumulation.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from .mixing import mix, pairs_from_audit, pairs_from_original
from .sft_data import collator_for, rows_for

FINETUNE_KINDS = ("lora", "full")


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # the language model's attention projections only: a bare ["q_proj", "v_proj"] also hits the vision tower
    target_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"


@dataclass
class OriginalData:
    dataset: str | None = None  # Hub id or saved dataset path of the target's own training data
    split: str = "train"
    image_column: str = "image"
    question_column: str = "question"
    answer_column: str = "answer"
    id_column: str | None = None
    limit: int | None = None


@dataclass
class Recipe:
    name: str = "recipe"
    model: str = ""
    finetune: str = "full"
    audited: list[str] = field(default_factory=list)  # audit output dirs or Hub dataset ids
    selection: str = "failures"  # failures | answerable (the "same images" control)
    original: OriginalData = field(default_factory=OriginalData)
    generated_per_original: int | None = 1
    generated_ratio: float | None = None
    epochs: float = 1.0
    global_batch_size: int = 256
    per_device_batch_size: int = 8
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    llm_dropout: float = 0.0
    label_smoothing: float = 0.0
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    max_steps: int = -1
    seed: int = 0
    gradient_checkpointing: bool = False
    lora: LoraSettings = field(default_factory=LoraSettings)
    merge_lora: bool = False  # save base + adapter merged (always done when the model is itself an adapter)
    output_dir: str = "outputs/recipe"
    notes: str = ""

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> Recipe:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        raw.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown recipe field(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        raw["original"] = OriginalData(**(raw.get("original") or {}))
        raw["lora"] = LoraSettings(**(raw.get("lora") or {}))
        for f in fields(cls):  # YAML 1.1 reads 1e-5 (no dot) as a string
            if f.type in ("float", "float | None") and isinstance(raw.get(f.name), str):
                try:
                    raw[f.name] = float(raw[f.name])
                except ValueError:
                    raise ValueError(f"{path}: {f.name} must be a number, got {raw[f.name]!r}") from None
        recipe = cls(**raw)
        recipe.validate(str(path))
        return recipe

    def validate(self, where: str = "recipe") -> None:
        if self.finetune not in FINETUNE_KINDS:
            raise ValueError(f"{where}: finetune must be one of {FINETUNE_KINDS}, got {self.finetune!r}")
        if not self.model:
            raise ValueError(f"{where}: no model: set `model:` or pass --model")
        if not self.audited and not self.original.dataset:
            raise ValueError(f"{where}: no training data: pass --audited <audit dir or Hub id> and/or original.dataset")


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

    generated = [pair for source in recipe.audited for pair in pairs_from_audit(load_audited(source), recipe.selection)]
    original = []
    if recipe.original.dataset:
        spec = recipe.original
        path = Path(spec.dataset)
        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            loaded = loaded[spec.split] if isinstance(loaded, datasets.DatasetDict) else loaded
        else:
            loaded = datasets.load_dataset(spec.dataset, split=spec.split)
        if spec.limit:
            loaded = loaded.select(range(min(spec.limit, len(loaded))))
        original = pairs_from_original(loaded, spec.image_column, spec.question_column, spec.answer_column, spec.id_column, spec.split)
    mixed = mix(original, generated, recipe.generated_per_original, recipe.generated_ratio, recipe.seed)
    if not mixed:
        raise ValueError("no training pair: the audited data holds no selected probe and no original data was given")
    return mixed, sum(p.origin == "auditdm" for p in mixed), sum(p.origin == "original" for p in mixed)


def load_for_training(recipe: Recipe):
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    from model_adapters import resolve

    path = resolve(recipe.model)[0]
    adapter_config = Path(path) / "adapter_config.json"
    base_path = json.loads(adapter_config.read_text())["base_model_name_or_path"] if adapter_config.exists() else path
    config = AutoConfig.from_pretrained(base_path)
    text_config = getattr(config, "text_config", config)
    if hasattr(text_config, "attention_dropout"):
        text_config.attention_dropout = recipe.llm_dropout  # the paper's "LLM dropout"
    dtype = torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(base_path, config=config, dtype=dtype)
    if adapter_config.exists():  # a LoRA checkpoint (an earlier iteration): continue from base + adapter
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, path).merge_and_unload()
    processor = AutoProcessor.from_pretrained(path)
    return model, processor, dtype, adapter_config.exists()


def run_recipe(recipe: Recipe) -> RecipeResult:
    import datasets
    import torch
    from trl import SFTConfig, SFTTrainer

    pairs, generated, original = build_pairs(recipe)
    model, processor, dtype, from_adapter = load_for_training(recipe)
    model_type = model.config.model_type
    train_dataset = datasets.Dataset.from_list(rows_for(pairs, model_type))
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    accumulation = max(1, math.ceil(recipe.global_batch_size / (recipe.per_device_batch_size * world_size)))
    global_batch = recipe.per_device_batch_size * world_size * accumulation
    if len(pairs) < global_batch:
        raise ValueError(
            f"{len(pairs)} training pair(s) cannot fill one global batch of {global_batch}: audit more images "
            "or lower global_batch_size / per_device_batch_size"
        )
    args = SFTConfig(
        output_dir=recipe.output_dir,
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps,
        per_device_train_batch_size=recipe.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        learning_rate=recipe.learning_rate,
        weight_decay=recipe.weight_decay,
        label_smoothing_factor=recipe.label_smoothing,
        lr_scheduler_type=recipe.lr_scheduler,
        warmup_steps=recipe.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        seed=recipe.seed,
        bf16=dtype == torch.bfloat16,
        gradient_checkpointing=recipe.gradient_checkpointing,
        max_length=None,  # never cut the image tokens
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},  # images are processed in the collator
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        use_cpu=not torch.cuda.is_available(),
    )
    peft_config = None
    if recipe.finetune == "lora":
        from peft import LoraConfig

        s = recipe.lora
        peft_config = LoraConfig(r=s.r, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=s.target_modules, task_type="CAUSAL_LM")
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        processing_class=processor,
        data_collator=collator_for(model_type, processor),
        peft_config=peft_config,
    )
    with torch.enable_grad():  # some harness imports (vlmeval) switch autograd off process-wide
        result = trainer.train()
    if recipe.finetune == "lora" and (recipe.merge_lora or from_adapter):
        # an adapter over a merged base would not reload from the original base: save it whole
        trainer.model.merge_and_unload().save_pretrained(recipe.output_dir)
    else:
        trainer.save_model(recipe.output_dir)  # LoRA: the adapter; full: the whole model
    processor.save_pretrained(recipe.output_dir)
    Path(recipe.output_dir, "recipe.yaml").write_text(yaml.safe_dump(asdict(recipe), sort_keys=False))
    return RecipeResult(Path(recipe.output_dir), float(result.training_loss), int(result.global_step), len(pairs), generated, original)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fine-tune a target on audited pairs (AuditDM rectification)")
    parser.add_argument("--config", required=True, help="recipe YAML (recipes/configs/)")
    parser.add_argument("--model", help="override the recipe's model (name, local path or Hub id)")
    parser.add_argument("--audited", nargs="+", help="audit output dirs or Hub dataset ids")
    parser.add_argument("--original-dataset", help="the target's original training data (Hub id or saved dataset)")
    parser.add_argument("--finetune", choices=FINETUNE_KINDS)
    parser.add_argument("--output-dir")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--per-device-batch-size", type=int)
    parser.add_argument("--global-batch-size", type=int)
    args = parser.parse_args(argv)
    overrides = {
        "model": args.model, "audited": args.audited, "finetune": args.finetune, "output_dir": args.output_dir,
        "max_steps": args.max_steps, "per_device_batch_size": args.per_device_batch_size,
        "global_batch_size": args.global_batch_size,
    }
    recipe = Recipe.from_yaml(args.config, **overrides)
    if args.original_dataset:
        recipe.original.dataset = args.original_dataset
        recipe.validate(args.config)
    result = run_recipe(recipe)
    print(
        f"trained {result.steps} step(s) on {result.examples} pairs ({result.generated} audited, {result.original} original); "
        f"loss {result.train_loss:.4f}; saved to {result.output_dir}"
    )
    return 0
