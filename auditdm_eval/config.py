"""Settings of one audit run, and the presets the CLI starts from."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any


def default_cache_dir() -> Path:
    from model_adapters.registry import auditdm_home

    return auditdm_home() / "cache"


@dataclass
class AuditConfig:
    target: str
    references: list[str]
    auditor: str
    images: str
    out: str
    modes: list[str] = field(default_factory=lambda: ["question"])
    prompt_variant: str = "auditdm"
    matcher: str = "exact"
    matcher_model: str | None = None
    agreement_rule: str = "unanimous"
    reward: str = "binary"
    regenerate_renderer: str = "diffusers"
    regenerate_model: str = "flux.1-dev"
    edit_renderer: str = "diffusers"
    edit_model: str = "flux.1-kontext-dev"
    render_size: int = 1024
    render_steps: int = 28
    regenerate_guidance: float = 3.5
    edit_guidance: float = 2.5
    answer_max_new_tokens: int = 16
    auditor_max_new_tokens: int = 96
    auditor_sampling: bool = False
    probes_per_image: int = 1
    use_source_questions: bool = True
    seed: int = 0
    limit: int | None = None
    min_image_side: int = 28
    split: str = "train"
    image_column: str | None = None
    question_column: str | None = None
    answer_column: str | None = None
    id_column: str | None = None
    batch_size: int = 8  # source images per batch (and per shard)
    model_batch_size: int = 8
    render_batch_size: int = 4
    dtype: str = "auto"
    device: str = "auto"
    trust_remote_code: bool = False
    cache_dir: str | None = None  # None: $AUDITDM_HOME/cache (shared across runs)
    no_cache: bool = False
    overwrite: bool = False
    show_progress: bool = True
    annotator: str | None = None  # an annotator adding ground truth to each record (the world's)

    # Settings that change what a run produces: a rerun into the same --out must match them.
    IDENTITY_FIELDS = (
        "target", "references", "auditor", "images", "modes", "prompt_variant", "matcher", "matcher_model",
        "agreement_rule", "reward", "regenerate_renderer", "regenerate_model", "edit_renderer", "edit_model", "render_size", "render_steps",
        "regenerate_guidance", "edit_guidance", "answer_max_new_tokens", "auditor_max_new_tokens",
        "auditor_sampling", "probes_per_image", "use_source_questions", "seed", "split", "image_column",
        "question_column", "answer_column", "id_column", "min_image_side", "annotator",
    )

    def identity(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.IDENTITY_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_overrides(self, **overrides: Any) -> AuditConfig:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


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

TINY_NOTICE = (
    "No models given: running the embedded default on TINY RANDOM models in model-comparison mode "
    "(tiny-paligemma2 as target, tiny-gemma3-seed1 as the reference, tiny-gemma3 as auditor, tiny Flux "
    "renderers) over real photos from scikit-image. Their answers are random text: this shows the pipeline "
    "and the dataset it writes, not real failures. For a real audit pass e.g. "
    "--target paligemma2-3b-448 --ensemble gemma3-27b,qwen2.5-vl-7b --auditor gemma3-4b --images <dir|hf:dataset> "
    "(Hub ids or local paths work too), or --preset paper-paligemma2."
)
