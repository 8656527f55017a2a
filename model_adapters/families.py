"""Per-family prompt formatting: how one batch of requests becomes processor inputs.

Keyed by the checkpoint's ``config.model_type``; anything unlisted uses the processor's chat
template. Register a new family with :func:`register_prompt_format`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from PIL import Image

from .protocol import GenerationRequest

SHORT_ANSWER_SUFFIX = "\nAnswer the question using a single word or phrase."


class PromptFormat(Protocol):
    def processor_inputs(self, processor: Any, requests: Sequence[GenerationRequest]) -> dict[str, Any]:
        """Keyword arguments for ``processor(...)`` (text and images), padded as one batch."""
        ...


def _rgb(images: Sequence[Image.Image]) -> list[Image.Image]:
    return [image if image.mode == "RGB" else image.convert("RGB") for image in images]


class ChatTemplateFormat:
    """Chat models (Gemma3, Qwen2.5-VL, Llava, ...): one user turn with the images then the text."""

    def __init__(self, nested_images: bool = True, vqa_suffix: str = SHORT_ANSWER_SUFFIX):
        self.nested_images = nested_images  # Gemma3 wants [[img], [img]], Qwen2.5-VL a flat list
        self.vqa_suffix = vqa_suffix

    def text(self, processor: Any, request: GenerationRequest) -> str:
        prompt = request.prompt + (self.vqa_suffix if request.task == "vqa" else "")
        content = [{"type": "image"} for _ in request.images] + [{"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def processor_inputs(self, processor, requests):
        texts = [self.text(processor, request) for request in requests]
        images = [_rgb(request.images) for request in requests]
        inputs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
        if any(images):
            inputs["images"] = images if self.nested_images else [im for group in images for im in group]
        return inputs


class PaliGemmaFormat:
    """PaliGemma / PaliGemma2: prefix prompts, no chat template (``answer en <question>``)."""

    def __init__(self, language: str = "en"):
        self.language = language

    def text(self, processor: Any, request: GenerationRequest) -> str:
        image_tokens = processor.image_token * len(request.images) if hasattr(processor, "image_token") else ""
        prompt = request.prompt.replace("\n", " ").strip()
        if request.task == "vqa":
            prompt = f"answer {self.language} {prompt}"
        return image_tokens + prompt

    def processor_inputs(self, processor, requests):
        return {
            "text": [self.text(processor, request) for request in requests],
            "images": [_rgb(request.images) for request in requests],
            "padding": "longest",
            "return_tensors": "pt",
        }


PROMPT_FORMATS: dict[str, PromptFormat] = {
    "paligemma": PaliGemmaFormat(),
    "gemma3": ChatTemplateFormat(nested_images=True),
    "qwen2_5_vl": ChatTemplateFormat(nested_images=False),
    "qwen2_vl": ChatTemplateFormat(nested_images=False),
}
DEFAULT_FORMAT: PromptFormat = ChatTemplateFormat(nested_images=True)


def register_prompt_format(model_type: str, prompt_format: PromptFormat) -> None:
    PROMPT_FORMATS[model_type] = prompt_format


def prompt_format_for(model_type: str) -> PromptFormat:
    return PROMPT_FORMATS.get(model_type, DEFAULT_FORMAT)
