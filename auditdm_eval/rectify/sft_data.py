"""Training rows in the format trl's SFTTrainer expects, framed as the adapters frame requests.

A pair is trained on exactly the prompt the model will later be asked with (the VQA framing of
``model_adapters``): chat families get conversational prompt/completion rows that trl's vision
collator renders with the chat template; PaliGemma, which has no chat template, gets
``answer en <question>`` prompts and its processor's own ``suffix`` labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from model_adapters import GenerationRequest
from model_adapters.families import PaliGemmaFormat, prompt_format_for

from .mixing import TrainPair


def chat_rows(pairs: Sequence[TrainPair], model_type: str) -> list[dict[str, Any]]:
    prompt_format = prompt_format_for(model_type)
    suffix = getattr(prompt_format, "vqa_suffix", "")
    return [
        {
            "images": [pair.image.convert("RGB")],
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": pair.question + suffix}]}],
            "completion": [{"role": "assistant", "content": [{"type": "text", "text": pair.answer}]}],
        }
        for pair in pairs
    ]


def paligemma_rows(pairs: Sequence[TrainPair], model_type: str) -> list[dict[str, Any]]:
    framing = PaliGemmaFormat()

    class _NoImageToken:  # the processor adds the image tokens itself in the collator
        image_token = ""

    return [
        {
            "images": [pair.image.convert("RGB")],
            "prompt": framing.text(_NoImageToken(), GenerationRequest((pair.image,), pair.question)),
            "completion": pair.answer,
        }
        for pair in pairs
    ]


class PaliGemmaSuffixCollator:
    """Batches with PaliGemma's processor: ``suffix`` makes the labels (prefix tokens masked)."""

    def __init__(self, processor: Any):
        self.processor = processor

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        return self.processor(
            text=[example["prompt"] for example in examples],
            images=[example["images"] for example in examples],
            suffix=[example["completion"] for example in examples],
            padding="longest",
            return_tensors="pt",
        )


ROW_BUILDERS: dict[str, Callable[[Sequence[TrainPair], str], list[dict[str, Any]]]] = {"paligemma": paligemma_rows}
COLLATORS: dict[str, Callable[[Any], Callable]] = {"paligemma": PaliGemmaSuffixCollator}


def rows_for(pairs: Sequence[TrainPair], model_type: str) -> list[dict[str, Any]]:
    return ROW_BUILDERS.get(model_type, chat_rows)(pairs, model_type)


def collator_for(model_type: str, processor: Any) -> Callable | None:
    """A family-specific collator, or None for trl's own vision-language collator."""
    factory = COLLATORS.get(model_type)
    return factory(processor) if factory else None
