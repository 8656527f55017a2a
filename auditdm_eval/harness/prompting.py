"""How a harness prompt becomes a request to one of our adapters.

Harness contexts already carry the task's instructions, so they pass through as ``instruct``
requests, except a context that ends with the short-answer instruction our audit uses: that is
a VQA question, and goes out as ``vqa`` so each family frames it as the audit did (PaliGemma's
``answer en``, the chat families' suffix). An audited pair is then asked the same way in the
audit and in the harness.
"""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from model_adapters import GREEDY, GenerationRequest, GenerationSettings
from model_adapters.families import SHORT_ANSWER_SUFFIX

PROMPT_MODES = ("auto", "instruct", "vqa")


def harness_request(
    context: str, images: Sequence[Image.Image], prompt_mode: str = "auto", settings: GenerationSettings = GREEDY
) -> GenerationRequest:
    if prompt_mode not in PROMPT_MODES:
        raise ValueError(f"unknown prompt_mode {prompt_mode!r}; choose one of: {', '.join(PROMPT_MODES)}")
    text = context
    task = "instruct" if prompt_mode == "instruct" else "vqa" if prompt_mode == "vqa" else None
    if task is None:
        task = "vqa" if context.rstrip().endswith(SHORT_ANSWER_SUFFIX.strip()) else "instruct"
    if task == "vqa" and text.rstrip().endswith(SHORT_ANSWER_SUFFIX.strip()):
        text = text.rstrip()[: -len(SHORT_ANSWER_SUFFIX.strip())].rstrip()
    return GenerationRequest(images=tuple(image.convert("RGB") for image in images), prompt=text, task=task, settings=settings)


def truncate_at_stop(text: str, until: Sequence[str] | None) -> str:
    for stop in until or ():
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text.strip()
