"""Settings of one audit run, and the presets the CLI starts from.

Every field carries its help: the CLI's flags (``--field-name``) and a ``--config`` YAML file
(keys = field names) are derived from these dataclasses by trl's ``TrlParser``, as trl does for
its own configs. Values are checked when the config is made, before anything loads or is written.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .modes import check_modes

DTYPES = ("auto", "float32", "float16", "bfloat16")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def default_cache_dir() -> Path:
    from model_adapters.registry import auditdm_home

    return auditdm_home() / "cache"


def option(default: Any = None, help: str = "", **metadata: Any) -> Any:
    """A dataclass field with its CLI help (and optional ``aliases``)."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **metadata})
    return field(default=default, metadata={"help": help, **metadata})


def flag_of(name: str) -> str:
    """The flag a user types for a field (its first alias, if it has one)."""
    for candidate in fields(AuditConfig):
        if candidate.name == name and candidate.metadata.get("aliases"):
            return candidate.metadata["aliases"][0]
    return "--" + name.replace("_", "-")


@dataclass
class AuditConfig:
    # models
    target: str = option("", "the model being audited: a registered name (`auditdm models`), a local path or a Hub id")
    references: list[str] = option(
        [], "the reference ensemble, comma-separated, target excluded (one model: the paper's model-comparison mode)",
        aliases=["--ensemble", "--reference"],
    )
    auditor: str = option("", "the VLM that writes questions, captions and edit commands (a trained checkpoint too)")
    # images
    images: str = option("", "the image pool: a folder of images, hf:<hub id or saved dataset>, skimage:<names> or world:<count>[:<seed>]")
    split: str = option("train", "dataset split (hf: pools)")
    image_column: str | None = option(None, "image column (hf: pools; default: the first Image column)")
    question_column: str | None = option(None, "original questions, asked again on regenerated and edited images: (Q, I*)")
    answer_column: str | None = option(None, "original answers (hf: pools)")
    id_column: str | None = option(None, "a column of stable ids (hf: pools; default: <split>:<row>)")
    limit: int | None = option(None, "audit at most this many source images")
    min_image_side: int = option(28, "skip images smaller than this many pixels on a side")
    max_image_pixels: int | None = option(100_000_000, "skip images of more pixels than this (checked before decoding)")
    # audit
    modes: list[str] = option(["question"], "audit modes, comma-separated: question, regenerate, edit", aliases=["--mode"])
    prompt_variant: str = option("auditdm", "auditor prompts: auditdm (the paper's p_q, p_c, p_e) or baseline (prompt engineering)")
    probes_per_image: int = option(1, "probes per image and mode (more than 1 samples the auditor, each with its own seed)")
    matcher: str = option("exact", "when two answers agree: exact (VQA normalisation), embedding, or judge (a VLM)")
    matcher_model: str | None = option(None, "the embedding model (matcher embedding) or the judge VLM (matcher judge; default: the auditor)")
    agreement_rule: str = option("unanimous", "when the ensemble agrees: unanimous or majority", aliases=["--agreement"])
    reward: str = option("binary", "the auditor's reward per probe: binary (the paper's) or graded")
    source_questions: bool = option(True, "ask a pool's own question on its regenerated and edited images (--no-source-questions: the auditor asks)")
    annotator: str | None = option(None, "an annotator adding ground truth to each record (world: the planted-weakness world's)")
    seed: int = option(0, "seed of the auditor's sampling and the renderers")
    # renderers
    regenerate_renderer: str = option("diffusers", "renderer backend of the regenerate mode (diffusers, world, ...)")
    regenerate_model: str = option("flux.1-dev", "its text-to-image model: alias, Hub id or local path")
    edit_renderer: str = option("diffusers", "renderer backend of the edit mode (diffusers, world, ...)")
    edit_model: str = option("flux.1-kontext-dev", "its image-editing model: alias, Hub id or local path")
    render_size: int = option(1024, "rendered image height and width, in pixels")
    render_steps: int = option(28, "diffusion steps per rendered image")
    regenerate_guidance: float = option(3.5, "guidance scale of the text-to-image pipeline")
    edit_guidance: float = option(2.5, "guidance scale of the image-editing pipeline")
    # generation
    answer_max_new_tokens: int = option(16, "answer length of the target and the references, in tokens")
    auditor_max_new_tokens: int = option(96, "length of the auditor's texts, in tokens")
    auditor_sampling: bool = option(False, "sample the auditor (temperature 1, top-p 0.95) even with one probe per image")
    auditor_temperature: float | None = option(None, "the auditor's sampling temperature (sets --auditor-sampling; default 1)")
    auditor_top_p: float | None = option(None, "the auditor's nucleus sampling top-p (sets --auditor-sampling; default 0.95)")
    # run
    out: str = option("auditdm-out", "output directory; a rerun with the same settings resumes it")
    overwrite: bool = option(False, "replace a different run found in --out (train-auditor: in --output_dir)")
    batch_size: int = option(8, "source images per batch (and per shard)")
    model_batch_size: int = option(8, "requests per model call")
    render_batch_size: int = option(4, "images per renderer call")
    dtype: str = option("auto", "model dtype: auto, float32, float16 or bfloat16")
    device: str = option("auto", "device: auto, cpu, cuda, cuda:1, ...")
    trust_remote_code: bool = option(False, "allow models with custom code from the Hub")
    cache_dir: str | None = option(None, "answer and render cache (default $AUDITDM_HOME/cache, shared by runs)")
    no_cache: bool = option(False, "keep answers in memory only, render without a cache")
    progress: bool = option(True, "show a progress bar (--no-progress hides it)")
    preset: str | None = option(None, "start from a preset: tiny, world (the default when no model is given), paper-paligemma2")

    # Settings that change what a run produces: a rerun into the same --out must match them.
    IDENTITY_FIELDS = (
        "target", "references", "auditor", "images", "modes", "prompt_variant", "matcher", "matcher_model",
        "agreement_rule", "reward", "regenerate_renderer", "regenerate_model", "edit_renderer", "edit_model", "render_size",
        "render_steps", "regenerate_guidance", "edit_guidance", "answer_max_new_tokens", "auditor_max_new_tokens",
        "auditor_sampling", "probes_per_image", "source_questions", "seed", "split", "image_column",
        "question_column", "answer_column", "id_column", "min_image_side", "annotator",
        "auditor_temperature", "auditor_top_p",
    )
    # Identity fields added after runs were made: left out of the identity while unset, so those runs still resume.
    LATER_IDENTITY_FIELDS = ("auditor_temperature", "auditor_top_p")

    def __post_init__(self) -> None:
        self.references = _split_commas(self.references)
        self.modes = _split_commas(self.modes)
        problems = []
        for name in ("batch_size", "model_batch_size", "render_batch_size", "probes_per_image", "answer_max_new_tokens",
                     "auditor_max_new_tokens", "render_size", "render_steps", "min_image_side"):
            if getattr(self, name) < 1:
                problems.append(f"{flag_of(name)} must be at least 1 (got {getattr(self, name)})")
        if self.max_image_pixels is not None and self.max_image_pixels < 1:
            problems.append(f"--max-image-pixels must be at least 1, or left out for no limit (got {self.max_image_pixels})")
        if self.limit is not None and self.limit < 1:
            problems.append(f"--limit must be at least 1, or left out to audit every image (got {self.limit})")
        if self.auditor_temperature is not None and not self.auditor_temperature > 0:
            problems.append(f"--auditor-temperature must be above 0; leave --auditor-sampling off for greedy decoding (got {self.auditor_temperature})")
        if self.auditor_top_p is not None and not 0 < self.auditor_top_p <= 1:
            problems.append(f"--auditor-top-p must be in (0, 1] (got {self.auditor_top_p})")
        if self.dtype not in DTYPES:
            problems.append(f"--dtype must be one of {', '.join(DTYPES)} (got {self.dtype!r})")
        try:
            check_modes(self.modes)
        except ValueError as error:
            problems.append(str(error))
        problems += _registry_problems(self)
        if problems:
            raise ValueError("invalid audit settings:\n  " + "\n  ".join(problems))

    def identity(self) -> dict[str, Any]:
        return {
            name: getattr(self, name) for name in self.IDENTITY_FIELDS
            if not (name in self.LATER_IDENTITY_FIELDS and getattr(self, name) is None)
        }

    @property
    def samples_auditor(self) -> bool:
        """Whether the auditor samples (asked to, several probes per image, or a sampling setting given)."""
        return (
            self.auditor_sampling or self.probes_per_image > 1
            or self.auditor_temperature is not None or self.auditor_top_p is not None
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **overrides: Any) -> AuditConfig:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def check_ready(self) -> None:
        """What a run needs beyond valid values: models named, and an image pool that exists."""
        missing = [flag_of(name) for name in ("target", "auditor", "images") if not getattr(self, name)]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}: pass them, a --preset, a --config file, or no model flag at all for the embedded default")
        check_images(self.images)


def check_images(spec: str) -> None:
    """An image pool spec names a known source kind, an existing path, or a Hub dataset id."""
    from .sources import SOURCES

    kind, sep, rest = spec.partition(":")
    if kind == "hf" and rest.startswith((".", "/", "~")) and not Path(rest).expanduser().exists():
        raise ValueError(f"--images {spec!r}: no dataset saved at {rest}. Pass the folder `save_to_disk` wrote, or hf:<hub id>")
    if sep and kind in SOURCES:
        return
    if Path(spec).expanduser().exists() or (HUB_ID.match(spec) and not spec.startswith((".", "/", "~"))):
        return
    raise ValueError(
        f"--images {spec!r}: no such folder or file, and not a Hub dataset id (org/name). Pass a folder of images, "
        f"hf:<hub id or saved dataset>, or one of the kinds {', '.join(f'{k}:' for k in SOURCES)}"
    )


def _split_commas(values: list[str] | str) -> list[str]:
    values = [values] if isinstance(values, str) else values
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


def _registry_problems(config: AuditConfig) -> list[str]:
    from .judge import AGREEMENT_RULES, REWARDS
    from .matching import MATCHERS
    from .prompts import PROMPT_VARIANTS
    from .registry import UnknownNameError
    from .renderers import RENDERERS
    from .stages.annotate import ANNOTATORS

    checks = [
        ("prompt_variant", PROMPT_VARIANTS), ("matcher", MATCHERS), ("agreement_rule", AGREEMENT_RULES), ("reward", REWARDS),
        ("regenerate_renderer", RENDERERS), ("edit_renderer", RENDERERS), ("annotator", ANNOTATORS),
    ]
    problems = []
    for name, registry in checks:
        value = getattr(config, name)
        if value is None:
            continue
        try:
            registry.get(value)
        except UnknownNameError as error:
            problems.append(f"{flag_of(name)}: {error}")
    if config.preset is not None and config.preset not in PRESETS:
        problems.append(f"--preset: unknown preset {config.preset!r}; choose one of: {', '.join(PRESETS)}")
    return problems


PRESETS: dict[str, dict[str, Any]] = {
    # Tiny RANDOM models built from configs, real photos from scikit-image: runs offline in minutes.
    # Model comparison (one reference): random models never agree with each other, so an ensemble
    # of them would leave no answerable probe for the harness tasks to show.
    "tiny": {
        "target": "tiny-paligemma2",
        "references": ["tiny-gemma3-seed1"],
        "auditor": "tiny-gemma3",
        "images": "skimage:astronaut,chelsea,coffee,rocket,horse,clock",
        "modes": ["question", "regenerate", "edit"],
        "regenerate_model": "tiny-flux",
        "edit_model": "tiny-flux-kontext",
        "render_size": 32,
        "render_steps": 2,
        "answer_max_new_tokens": 6,
        "auditor_max_new_tokens": 12,
    },
    # The planted-weakness world: a target with a known weakness, three noisy oracles as the ensemble
    # (10% independent errors each, majority), the warm-started world auditor, all three modes with the
    # world's programmatic renderers and ground truth in every record. Runs offline in minutes; the
    # failures it finds are real failures of the target (precision is measured against the truth).
    "world": {
        "target": "world-target-redgreen",
        "references": ["world-oracle-noisy-a", "world-oracle-noisy-b", "world-oracle-noisy-c"],
        "agreement_rule": "majority",
        "auditor": "world-auditor",
        "images": "world:48",
        "probes_per_image": 2,
        "modes": ["question", "regenerate", "edit"],
        "regenerate_renderer": "world",
        "regenerate_model": "world",
        "edit_renderer": "world",
        "edit_model": "world",
        "annotator": "world",
        "answer_max_new_tokens": 4,
        "auditor_max_new_tokens": 64,
    },
    # The paper's single-model analysis of PaliGemma2-3B (supplement A.2): needs the real weights.
    "paper-paligemma2": {
        "target": "paligemma2-3b-448",
        "references": ["paligemma2-28b-448", "gemma3-27b", "qwen2.5-vl-7b"],
        "auditor": "gemma3-4b",
        "modes": ["question", "regenerate", "edit"],
        "regenerate_model": "flux.1-dev",
        "edit_model": "flux.1-kontext-dev",
    },
}
DEFAULT_PRESET = "world"


def preset_in(argv: list[str], config_flags: tuple[str, ...] = ("--config",)) -> tuple[str | None, dict[str, Any]]:
    """(the preset ``--preset`` or the config file names, or None; the config file's values), the
    preset checked against :data:`PRESETS`."""
    import argparse

    from .errors import ConfigError
    from .parsing import read_yaml

    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--preset")
    pre.add_argument(*config_flags, dest="config")
    known, _ = pre.parse_known_args(argv)
    from_file = read_yaml(known.config) if known.config else {}
    preset = known.preset or from_file.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ConfigError(f"--preset: unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    return preset, from_file

TINY_NOTICE = (
    "Running the tiny preset on TINY RANDOM models in model-comparison mode "
    "(tiny-paligemma2 as target, tiny-gemma3-seed1 as the reference, tiny-gemma3 as auditor, tiny Flux "
    "renderers) over real photos from scikit-image. Their answers are random text: this shows the pipeline "
    "and the dataset it writes, not real failures. For a real audit pass e.g. "
    "--target paligemma2-3b-448 --ensemble gemma3-27b,qwen2.5-vl-7b --auditor gemma3-4b --images <dir|hf:dataset> "
    "(Hub ids or local paths work too), or --preset paper-paligemma2."
)
WORLD_NOTICE = (
    "No models given: running the embedded default, the planted-weakness world. The target {target} has a "
    "planted weakness (the default one, world-target-redgreen, sees red and green swapped); three noisy oracles (10% random "
    "errors each, majority) are the reference ensemble; the world-auditor, a tiny Gemma3 warm-started on the world "
    "(shipped with the package, installed under $AUDITDM_HOME), writes {probes_per_image} probes per scene and mode on "
    "{images}. Every record holds the ground truth, so "
    "the failures found are real failures of the target. Other weaknesses: --target world-target-mirror, "
    "world-target-undercount or world-target:<module>:<function> (your own). The transformers path on tiny "
    "random models: --preset tiny. A real audit: --target paligemma2-3b-448 --ensemble gemma3-27b,qwen2.5-vl-7b "
    "--auditor gemma3-4b --images <dir|hf:dataset>, or --preset paper-paligemma2."
)
PRESET_NOTICES: dict[str, str] = {"tiny": TINY_NOTICE, "world": WORLD_NOTICE}  # formatted with the run's AuditConfig fields
# Said instead where a flag or config file replaced a preset model: the notices above name the preset's own.
OWN_MODELS_NOTICE = (
    "Running the {preset} preset with the models given: the target {target}, the references {references} "
    "({agreement_rule}), the auditor {auditor}, writing {probes_per_image} probes per image and mode on {images}."
)
PRESET_MODEL_FIELDS = ("target", "references", "auditor")


def preset_notice(config: AuditConfig) -> str | None:
    """What the run about to start audits with, for a preset that has a notice; None for other runs."""
    if config.preset not in PRESET_NOTICES:
        return None
    values = asdict(config)
    preset = PRESETS[config.preset]
    own = all(values[name] == preset[name] for name in PRESET_MODEL_FIELDS if name in preset)
    text = PRESET_NOTICES[config.preset] if own else OWN_MODELS_NOTICE
    return text.format(**{**values, "references": ", ".join(values["references"])})
