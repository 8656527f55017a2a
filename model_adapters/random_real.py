"""RANDOM checkpoints at the real sizes of the paper's models, built offline from their published configs.

``random-gemma3-4b`` (the paper's auditor base), ``random-paligemma2-3b-448`` (its main target) and
``random-qwen2.5-vl-7b`` (a reference) have the widths, depths, heads, vision towers, image token
counts and vocabulary sizes of the Hub checkpoints, so they cost what those cost in memory and time,
and load through the same code; their weights are random and their tokenizer is the tiny models'
word list (ids beyond it are never generated). Nothing is downloaded. They answer with exactly
``max_new_tokens`` tokens: the generation config ends an answer only at the image placeholder, which
no adapter generates, so timings compare across models and runs (speed is measured at fixed answer
lengths, as a real model's answers would vary).

They are built once (on the GPU in bfloat16 when there is one) under ``$AUDITDM_HOME/tiny``:
8.6 GB, 6.1 GB and 16.6 GB on disk. ``benchmarks/real_size.py`` times the audit's stages on them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .sizes import Sizes

if TYPE_CHECKING:
    import torch

SIGLIP_SO400M = {
    "hidden_size": 1152, "intermediate_size": 4304, "num_hidden_layers": 27, "num_attention_heads": 16, "patch_size": 14,
    "vision_use_head": False,  # neither VLM uses the pooling head; their checkpoints have none
}


@dataclass(frozen=True)
class RealArchitecture:
    """One published checkpoint's architecture: which family builds it, at which sizes, and how many
    parameters its model card gives (the check that the sizes are the real ones)."""

    hub_id: str
    family: str
    sizes: Sizes
    published_parameters: float


REAL_ARCHITECTURES: dict[str, RealArchitecture] = {
    "gemma3-4b": RealArchitecture(
        "google/gemma-3-4b-it",
        "gemma3",
        Sizes(
            text={
                "hidden_size": 2560, "intermediate_size": 10240, "num_hidden_layers": 34, "num_attention_heads": 8,
                "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 1024,
                "max_position_embeddings": 131072,
            },
            vision={**SIGLIP_SO400M, "image_size": 896},
            image_size=896,
            image_tokens=256,
            vocab_size=262208,
        ),
        4.30e9,
    ),
    "paligemma2-3b-448": RealArchitecture(
        "google/paligemma2-3b-pt-448",
        "paligemma2",
        Sizes(
            text={
                "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8,
                "num_key_value_heads": 4, "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 4096,
                "max_position_embeddings": 8192, "final_logit_softcapping": 30.0, "attn_logit_softcapping": 50.0,
            },
            vision={**SIGLIP_SO400M, "image_size": 448},
            image_size=448,
            image_tokens=1024,
            vocab_size=257216,
            top={"projection_dim": 2304, "hidden_size": 2304},
        ),
        3.03e9,
    ),
    "qwen2.5-vl-7b": RealArchitecture(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "qwen2.5-vl",
        Sizes(
            text={
                "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28,
                "num_key_value_heads": 4, "max_position_embeddings": 128000, "tie_word_embeddings": False,
                "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
            },
            vision={
                "depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 3584,
                "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2, "window_size": 112,
                "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu",
            },
            image_size=448,  # at most 448 x 448 pixels: 256 image tokens
            vocab_size=152064,
            top={"tie_word_embeddings": False},
        ),
        8.29e9,
    ),
}


BUILD_REVISION = "r2"  # r2: prompt tokens' embeddings and Gemma3's image projection drawn, not zero; r1 builds are not reused


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Parameters created inside are ``dtype`` from the start: a 7B model never exists in float32."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def parts(name: str, seed: int = 0, device: str = "cpu", dtype: torch.dtype | None = None):
    """(model, processor, end ids) of the random ``name`` on ``device`` (bfloat16 unless ``dtype``);
    ``device="meta"`` allocates nothing."""
    import torch

    from .tiny import VLM_FAMILIES

    dtype = dtype or torch.bfloat16
    architecture = REAL_ARCHITECTURES[name]
    with default_dtype(dtype):
        return VLM_FAMILIES[architecture.family](architecture.sizes, seed, device=device)


def prompt_token_ids(tokenizer) -> list[int]:
    """The ids a prompt is built from besides words: special and added tokens (``<bos>``, turn markers), but
    padding, which attention masks out (its row stays the architecture's, zero where it names a padding index)."""
    return sorted((set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())) - {tokenizer.pad_token_id})


def fill_zero_matrices(model: torch.nn.Module, std: float, seed: int) -> None:
    """Draw every weight matrix that the architecture's initialisation left all zero (Gemma3's image projection)."""
    import torch

    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2 and not bool(parameter.any()):
                drawn = torch.randn(parameter.shape, generator=generator) * std
                parameter.copy_(drawn.to(parameter.device, parameter.dtype))


def build_random_real(name: str, out_dir: str | Path, seed: int = 0) -> Path:
    """Build the random ``name`` on the GPU when there is one (bfloat16) and save it to ``out_dir``.

    Unlike the tiny models, every row a prompt reads is drawn, not zeroed: a token whose embedding is
    zero at position 0 (``<bos>``, attending only to itself) keeps a hidden state of exactly zero
    through every layer, and each RMS norm then multiplies the gradient reaching it by 1/sqrt(eps),
    1,000 for Gemma3; over 34 layers that overflows float32 and bfloat16 alike and the first GRPO step's
    gradient was NaN (README, "GRPO at real sizes")."""
    import torch

    from .tiny import _save_vlm
    from .transformers_backend import placeholder_token_ids

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, processor, eos_ids = parts(name, seed, device)
    fill_zero_matrices(model, model.config.get_text_config().initializer_range, seed)
    # answers end only at the image placeholder, which no adapter generates: fixed lengths
    path = _save_vlm(model.eval(), processor, eos_ids, out_dir, answer_ends=placeholder_token_ids(model.config),
                     keep_rows=prompt_token_ids(processor.tokenizer))
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    return path


def ensure_random_real(name: str, root: str | Path, seed: int = 0) -> Path:
    """Build the random ``name`` into ``root/random-{name}-seed{seed}-{BUILD_REVISION}`` once."""
    from .tiny import build_once

    target = Path(root) / f"random-{name}-seed{seed}-{BUILD_REVISION}"
    return build_once(target, lambda staging: build_random_real(name, staging, seed), "model_adapters.random_real")
