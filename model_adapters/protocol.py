"""The one protocol every model backend implements: batched generation over image(s)+text.

A :class:`GenerationRequest` carries everything that decides its output: images, prompt, task,
:class:`GenerationSettings` and a seed. Every backend honours them per request (two requests
with different settings may share one call), and the answer cache keys on all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from PIL import Image


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names it and what to do."""


TASKS = ("vqa", "instruct")


@dataclass(frozen=True)
class GenerationSettings:
    """How to generate one request's text.

    ``temperature`` 0 is greedy decoding (the seed is then irrelevant); above 0 the request is
    sampled with its own seed, so the same request always gives the same text and two seeds
    give independent samples. ``num_samples`` > 1 asks for that many independent samples:
    :func:`generate_samples` serves it on any backend.
    """

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    num_samples: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.max_new_tokens < 1:
            problems.append(f"max_new_tokens must be >= 1 (got {self.max_new_tokens})")
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.num_samples < 1:
            problems.append(f"num_samples must be >= 1 (got {self.num_samples})")
        if problems:
            raise ValueError("invalid generation settings: " + "; ".join(problems))

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def key(self) -> dict[str, Any]:
        """What of the settings decides the text (top_p means nothing to greedy decoding)."""
        if not self.sampling:
            return {"max_new_tokens": self.max_new_tokens, "temperature": 0.0}
        return {"max_new_tokens": self.max_new_tokens, "temperature": self.temperature, "top_p": self.top_p}


GREEDY = GenerationSettings()


@dataclass(frozen=True)
class GenerationRequest:
    """Images plus text for one generation.

    ``task`` tells the prompt format how to frame the text: ``vqa`` is a question to answer
    briefly (PaliGemma's ``answer en`` prefix, a short-answer instruction for chat models);
    ``instruct`` is an instruction passed through as it is (the auditor's prompts, a judge).
    ``metadata`` carries hints that never change the output (precomputed image hashes).
    """

    images: tuple[Image.Image, ...]
    prompt: str
    task: str = "vqa"
    settings: GenerationSettings = GREEDY
    seed: int = 0
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; choose one of: {', '.join(TASKS)}")


def derive_seed(seed: int, index: int) -> int:
    """The seed of sample ``index`` of a request seeded ``seed`` (sample 0 keeps the seed)."""
    if index == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:4], "big")


def single_samples(request: GenerationRequest) -> list[GenerationRequest]:
    """A request for ``num_samples`` samples as that many one-sample requests with derived seeds."""
    one = replace(request.settings, num_samples=1)
    return [replace(request, settings=one, seed=derive_seed(request.seed, k)) for k in range(request.settings.num_samples)]


def check_single_sample(requests: Sequence[GenerationRequest]) -> None:
    """Backends return one text per request: more samples go through :func:`generate_samples`."""
    many = [i for i, request in enumerate(requests) if request.settings.num_samples != 1]
    if many:
        raise ValueError(
            f"request(s) {many} ask for several samples: call model_adapters.generate_samples(model, requests), "
            "which gives each sample its own seed"
        )


@runtime_checkable
class VisionLanguageModel(Protocol):
    """A model that answers batches of requests, one text per request.

    ``model_id`` names the model in records; ``fingerprint`` identifies its weights and
    settings for the answer cache (two adapters with the same fingerprint answer alike).
    """

    model_id: str
    fingerprint: str

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]: ...


def generate_samples(model: VisionLanguageModel, requests: Sequence[GenerationRequest]) -> list[list[str]]:
    """Every sample each request asks for, from one batched call of ``model``."""
    expanded = [single_samples(request) for request in requests]
    texts = iter(model.generate([one for group in expanded for one in group]))
    return [[next(texts) for _ in group] for group in expanded]
