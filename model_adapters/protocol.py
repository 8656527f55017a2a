"""The one protocol every model backend implements: batched generation over image(s)+text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from PIL import Image

TASKS = ("vqa", "instruct")


@dataclass(frozen=True)
class GenerationRequest:
    """Images plus text for one generation.

    ``task`` tells the prompt format how to frame the text: ``vqa`` is a question to answer
    briefly (PaliGemma's ``answer en`` prefix, a short-answer instruction for chat models);
    ``instruct`` is an instruction passed through as it is (the auditor's prompts, a judge).
    """

    images: tuple[Image.Image, ...]
    prompt: str
    task: str = "vqa"
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}")


@runtime_checkable
class VisionLanguageModel(Protocol):
    """A model that answers batches of requests.

    ``model_id`` names the model in records; ``fingerprint`` identifies its weights and
    settings for the answer cache (two adapters with the same fingerprint answer alike).
    """

    model_id: str
    fingerprint: str

    def generate(self, requests: Sequence[GenerationRequest], **generation_kwargs: Any) -> list[str]: ...
