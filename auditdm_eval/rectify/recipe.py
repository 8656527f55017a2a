"""A rectification recipe: what is ours, trl's ``SFTConfig`` and trl's ``ModelConfig``, parsed as one.

A recipe is three dataclasses read by one parser (trl's ``TrlParser``; see :mod:`.parsing`):

- :class:`RectifyArguments` — what is ours only: the audited datasets and which of their probes
  train, the target's original data and how the two are mixed, the global batch size, the
  paper's "LLM dropout", whether a LoRA is saved merged, and free-form notes;
- trl's ``SFTConfig`` — every training argument (``output_dir``, ``num_train_epochs``,
  ``max_steps``, ``learning_rate``, ``per_device_train_batch_size``, ``weight_decay``,
  ``label_smoothing_factor``, ``lr_scheduler_type``, ``warmup_steps`` (below 1: a ratio of the
  total steps), ``seed``, ``activation_checkpointing``, ``run_name`` (the recipe's name), ...);
- trl's ``ModelConfig`` — the model (``model_name_or_path``, also ``--model``: a registered name,
  a local path, a LoRA adapter directory or a Hub id), ``dtype``, ``attn_implementation``,
  ``model_revision`` and LoRA (``use_peft``, ``lora_r``, ``lora_alpha``, ``lora_dropout``,
  ``lora_target_modules``, ...; the ``LoraConfig`` is trl's ``get_peft_config``).

Values, lowest first: the dataclasses' defaults, :data:`RECIPE_DEFAULTS` (where this project's
default differs from trl's), a ``--config`` YAML file (``recipes/configs/``), values passed in
code, then flags (``--learning_rate 1e-4`` or ``--learning-rate 1e-4``).

Settings that follow from others are set after parsing (:func:`derive`); a recipe that sets one
explicitly gets a clear error, except where honouring it is safe:

- ``gradient_accumulation_steps`` = global_batch_size / (per_device_train_batch_size x WORLD_SIZE),
  rounded up. Another value: error (set global_batch_size instead).
- ``use_cpu`` = no CUDA device visible. True: honoured (train on the CPU); false without a GPU: error.
- ``bf16`` = a bf16-capable GPU is used (and fp16 was not asked for). False: honoured; true
  without such a GPU: error.
- ``dtype`` (ModelConfig, the weights) = bfloat16 when bf16 is on, else float32. Honoured when
  given (``auto`` means derived, as the audit's ``--dtype auto`` does).
- ``max_length`` = None (a cut would drop image tokens). Any number: error.
- ``remove_unused_columns`` = False (the collator needs the image and prompt columns). True: error.
- ``dataset_kwargs.skip_prepare_dataset`` = True (the collator processes the images). Other keys
  are kept; false: error.

"Explicitly" means named in the YAML file, in code or on the command line; a value equal to the
derived one is accepted wherever it comes from.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from ..config import option
from ..errors import ConfigError
from .mixing import SELECTIONS
from ..parsing import build, make_layered_parser

LANGUAGE_MODEL_ATTENTION = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)"

# Where this project's default differs from trl's (still below a recipe file and the flags).
RECIPE_DEFAULTS: dict[str, Any] = {
    "output_dir": "outputs/recipe",
    "num_train_epochs": 1.0,
    "learning_rate": 1e-5,
    "lr_scheduler_type": "cosine",
    "seed": 0,
    "activation_checkpointing": False,  # trl's SFTConfig turns it on; on for big models in the FSDP/DeepSpeed configs
    "logging_steps": 1,
    # a checkpoint every 500 steps and at the end, only the last kept: a stopped run resumes from it
    "save_strategy": "steps",
    "save_steps": 500,
    "save_total_limit": 1,
    # the language model's attention projections only: a bare [q_proj, v_proj] also hits the vision tower
    "lora_target_modules": [LANGUAGE_MODEL_ATTENTION],
}

# Keys of the recipes before they embedded trl's configs, and what replaced them (named in the error).
RENAMED = {
    "name": "run_name", "model": "model_name_or_path", "finetune": "use_peft (true: LoRA, false: full)",
    "epochs": "num_train_epochs", "per_device_batch_size": "per_device_train_batch_size",
    "label_smoothing": "label_smoothing_factor", "lr_scheduler": "lr_scheduler_type",
    "warmup_ratio": "warmup_steps: below 1 it is a ratio of the total steps",
    "lora": "use_peft, lora_r, lora_alpha, lora_dropout, lora_target_modules",
    "original": "original_dataset, original_split, original_image_column, original_question_column, "
    "original_answer_column, original_id_column, original_limit",
}

DERIVED_FIELDS = (
    "gradient_accumulation_steps", "use_cpu", "bf16", "dtype", "max_length", "remove_unused_columns", "dataset_kwargs",
)

MODEL_HELP = (
    "the model to fine-tune: a registered name (`auditdm models`), a local path (a LoRA adapter directory too: "
    "trained as base + adapter merged) or a Hub id"
)


@dataclass
class RectifyArguments:
    """What is ours in a recipe (trl's ``SFTConfig`` and ``ModelConfig`` hold the rest)."""

    audited: list[str] = option([], "audited datasets whose probes train the target: audit output dirs or Hub dataset ids")
    selection: str = option(
        "failures", "which audited probes train: failures (the rectification data) or answerable (every probe the "
        "ensemble agreed on: the 'same images' control)",
    )
    original_dataset: str | None = option(
        None, "the target's own training data, mixed with the audited pairs: a Hub dataset id or a saved dataset path"
    )
    original_split: str = option("train", "split of the original data")
    original_image_column: str = option("image", "image column of the original data")
    original_question_column: str = option("question", "question column of the original data")
    original_answer_column: str = option("answer", "answer column of the original data (a list: its first answer)")
    original_id_column: str | None = option(
        None, "stable ids of the original data, matching the audit's source ids (none: <split>:<row>, as the audit gives them)"
    )
    original_limit: int | None = option(None, "use at most this many original examples")
    generated_per_original: int | None = option(
        1, "audited pairs kept per original example (matched by source id; the paper: 1; none: all; ignored without original data)"
    )
    generated_ratio: float | None = option(
        None, "then cap the audited pairs at this multiple of the original examples (none: no cap)"
    )
    global_batch_size: int = option(
        256, "examples per optimizer step across all processes: sets gradient_accumulation_steps from "
        "per_device_train_batch_size and WORLD_SIZE"
    )
    llm_dropout: float = option(0.0, "attention dropout of the language model (the paper's 'LLM dropout')")
    merge_lora: bool = option(
        False, "with use_peft: save base + adapter merged (always done when the model is itself an adapter)"
    )
    notes: str = option("", "free text kept with the recipe (where its values come from)")
    overwrite: bool = option(
        False, "replace a different run found in output_dir (a rerun with the same recipe resumes it from its last checkpoint)"
    )

    def __post_init__(self) -> None:
        if isinstance(self.audited, str):
            self.audited = [self.audited]
        problems = []
        if self.selection not in SELECTIONS:
            problems.append(f"selection must be one of {', '.join(SELECTIONS)} (got {self.selection!r})")
        if self.global_batch_size < 1:
            problems.append(f"global_batch_size must be at least 1 (got {self.global_batch_size})")
        if self.generated_per_original is not None and self.generated_per_original < 1:
            problems.append(f"generated_per_original must be at least 1, or none for all (got {self.generated_per_original})")
        if self.generated_ratio is not None and self.generated_ratio < 0:
            problems.append(f"generated_ratio must be at least 0, or none for no cap (got {self.generated_ratio})")
        if self.original_limit is not None and self.original_limit < 1:
            problems.append(f"original_limit must be at least 1 (got {self.original_limit})")
        if not 0 <= self.llm_dropout < 1:
            problems.append(f"llm_dropout must be in [0, 1) (got {self.llm_dropout})")
        if problems:
            raise ConfigError("invalid recipe:\n  " + "\n  ".join(problems))


def recipe_types() -> tuple[type, type, type]:
    from trl import ModelConfig, SFTConfig

    return RectifyArguments, SFTConfig, ModelConfig


def recipe_groups() -> dict[type, str]:
    ours, sft, model = recipe_types()
    return {
        ours: "recipe: data, mixing and what trl has no field for",
        sft: "training (trl SFTConfig)",
        model: "model and LoRA (trl ModelConfig; LoRA with --use_peft)",
    }


def recipe_parser(prog: str = "recipes/sft.py", description: str | None = None):
    parser = make_layered_parser(
        recipe_types(), groups=recipe_groups(), aliases={"model_name_or_path": ["--model"]},
        helps={"model_name_or_path": MODEL_HELP}, renamed=RENAMED, prog=prog, description=description,
        config_help="the recipe: a YAML file of field: value (recipes/configs/); flags override it",
    )
    parser.layer(RECIPE_DEFAULTS, "recipe defaults", explicit=False)
    return parser


@dataclass
class Environment:
    """What derived settings depend on besides the recipe."""

    world_size: int = 1
    cuda: bool = False
    bf16_supported: bool = False

    @classmethod
    def current(cls) -> Environment:
        import torch

        cuda = torch.cuda.is_available()
        return cls(int(os.environ.get("WORLD_SIZE", "1")), cuda, cuda and torch.cuda.is_bf16_supported())


def derive(values: Mapping[str, Any], explicit: Mapping[str, str], env: Environment | None = None) -> dict[str, Any]:
    """The settings that follow from others (see the module's table); conflicting explicit values: ConfigError."""
    env = env or Environment.current()
    problems: list[str] = []

    def given(name: str) -> bool:
        return name in explicit

    def where(name: str) -> str:
        return f"{name} (set in {explicit[name]})"

    per_device = int(values["per_device_train_batch_size"])
    if per_device < 1:
        raise ConfigError(f"per_device_train_batch_size must be at least 1 (got {per_device})")
    accumulation = max(1, math.ceil(int(values["global_batch_size"]) / (per_device * env.world_size)))
    if given("gradient_accumulation_steps") and int(values["gradient_accumulation_steps"]) != accumulation:
        problems.append(
            f"{where('gradient_accumulation_steps')} = {values['gradient_accumulation_steps']}, but it follows from "
            f"global_batch_size {values['global_batch_size']} / (per_device_train_batch_size {per_device} x "
            f"{env.world_size} process(es)) = {accumulation}: set global_batch_size instead"
        )

    use_cpu = bool(values["use_cpu"]) or not env.cuda
    if given("use_cpu") and not values["use_cpu"] and not env.cuda:
        problems.append(f"{where('use_cpu')} is false, but no CUDA device is visible")
    bf16_possible = not use_cpu and env.bf16_supported
    fp16 = bool(values.get("fp16"))
    if given("bf16") and values["bf16"] is not None:
        bf16 = bool(values["bf16"])
        if bf16 and not bf16_possible:
            problems.append(f"{where('bf16')} is true, but training runs {'on the CPU' if use_cpu else 'on a GPU without bf16'}")
        if bf16 and fp16:
            problems.append(f"{where('bf16')} and fp16 are both true: choose one")
    else:
        bf16 = bf16_possible and not fp16  # fp16 given: it is the mixed precision asked for
    dtype = values.get("dtype")
    if not given("dtype") or dtype in (None, "auto"):
        dtype = "bfloat16" if bf16 else "float32"

    if given("max_length") and values["max_length"] is not None:
        problems.append(f"{where('max_length')} = {values['max_length']}: it must stay unset (none), a cut would drop image tokens")
    if given("remove_unused_columns") and values["remove_unused_columns"]:
        problems.append(f"{where('remove_unused_columns')} is true: the collator needs the image and prompt columns")
    dataset_kwargs = values.get("dataset_kwargs") or {}
    if isinstance(dataset_kwargs, str):
        try:
            dataset_kwargs = json.loads(dataset_kwargs)
        except json.JSONDecodeError:
            problems.append(f"{where('dataset_kwargs')} is not a JSON object: {dataset_kwargs!r}")
            dataset_kwargs = {}
    if dataset_kwargs.get("skip_prepare_dataset") is False:
        problems.append(f"{where('dataset_kwargs')} sets skip_prepare_dataset false: the collator processes the images itself")
    if problems:
        raise ConfigError(
            "recipe settings that are derived from others were set to conflicting values:\n  " + "\n  ".join(problems)
        )
    return {
        "gradient_accumulation_steps": accumulation,
        "use_cpu": use_cpu,
        "bf16": bf16,
        "dtype": dtype,
        "max_length": None,
        "remove_unused_columns": False,
        "dataset_kwargs": {**dataset_kwargs, "skip_prepare_dataset": True},
    }


@dataclass
class Recipe:
    """A parsed recipe: ours, trl's training arguments (derived settings applied) and trl's model arguments."""

    rectify: RectifyArguments
    training: Any  # trl.SFTConfig
    model: Any  # trl.ModelConfig
    values: dict[str, Any] = field(repr=False)  # every field as parsed, before derivation (to rebuild with changes)
    explicit: dict[str, str] = field(repr=False)  # field -> where it was set
    derived: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_values(cls, values: Mapping[str, Any], explicit: Mapping[str, str], env: Environment | None = None) -> Recipe:
        ours, sft, model = recipe_types()
        names = {f.name for dtype in (ours, sft, model) for f in fields(dtype) if f.init}
        values = {key: value for key, value in values.items() if key in names}
        explicit = {key: source for key, source in explicit.items() if key in names}
        rectify = build(ours, values)  # checks our values before anything is derived from them
        derived = derive(values, explicit, env)
        merged = {**values, **derived}
        if "gradient_checkpointing" in explicit and "activation_checkpointing" not in explicit:
            # transformers' deprecated alias, honoured as transformers does when it alone is given
            merged["activation_checkpointing"] = values["gradient_checkpointing"]
        model_args = build(model, merged)
        if model_args.load_in_4bit or model_args.load_in_8bit:
            raise ConfigError("load_in_4bit / load_in_8bit: quantized (QLoRA) training is not wired into the recipes; drop them")
        return cls(rectify, build(sft, merged), model_args, dict(values), dict(explicit), derived)

    def with_values(self, source: str = "values passed in code", **changes: Any) -> Recipe:
        """The same recipe with some fields changed (counted as explicit), derived settings derived again."""
        return Recipe.from_values({**self.values, **changes}, {**self.explicit, **{key: source for key in changes}})

    def check_ready(self) -> None:
        """What training needs beyond valid values: a model and some data."""
        if not self.model.model_name_or_path:
            raise ConfigError("no model: set model_name_or_path in the recipe or pass --model <name, path or Hub id>")
        if not self.rectify.audited and not self.rectify.original_dataset:
            raise ConfigError(
                "no training data: pass --audited <audit dir or Hub id> and/or --original_dataset <Hub id or saved dataset>"
            )

    def to_yaml(self) -> str:
        """The recipe as run, loadable again with ``--config``: every field of ours and of the model, trl's
        training fields that were set, and (as comments) the settings derived for this run."""
        ours, _, model = recipe_types()
        keep = {f.name for dtype in (ours, model) for f in fields(dtype) if f.init}
        keep |= {key for key in (*RECIPE_DEFAULTS, *self.explicit) if key in self.values}
        keep -= set(DERIVED_FIELDS) - set(self.explicit)
        record = {key: _plain(self.values[key]) for key in self.values if key in keep}
        header = "".join(f"#   {key}: {json.dumps(_plain(value))}\n" for key, value in self.derived.items())
        return f"# the recipe as run (load it again with --config); derived for this run:\n{header}" + yaml.safe_dump(
            record, sort_keys=False
        )


def _plain(value: Any) -> Any:
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):  # enums
        return value.value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def parse_recipe(
    argv: Iterable[str] = (), values: Mapping[str, Any] | None = None, env: Environment | None = None,
    prog: str = "recipes/sft.py",
) -> Recipe:
    """A recipe from flags (``--config <yaml>`` among them) and/or values passed in code (above the YAML file)."""
    parser = recipe_parser(prog)
    parsed = parser.parse(argv, values)
    return Recipe.from_values(parsed, parser.explicit, env)

