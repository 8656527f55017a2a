"""The sizes of a random checkpoint of a VLM family (no torch here: the registry reads them at import)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Sizes:
    """How big a random checkpoint of a VLM family is. ``text`` holds the decoder's config fields
    (widths, depths, heads, context, rope), merged with the tokenizer's ids; ``vision`` the vision
    tower's config; ``top`` the model config's own size fields (PaliGemma's projection). Images are
    resized to ``image_size`` pixels a side (Qwen2.5-VL: at most that many squared) and become
    ``image_tokens`` soft tokens (Gemma3, PaliGemma2). ``vocab_size`` None sizes the vocabulary to the
    tokenizer; a real checkpoint's is larger (the extra rows are never generated, but cost what they cost)."""

    text: dict[str, Any]
    vision: dict[str, Any]
    image_size: int
    image_tokens: int = 0
    vocab_size: int | None = None
    top: dict[str, Any] = field(default_factory=dict)
