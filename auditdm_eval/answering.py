"""Asking a model a batch of requests: cached, batched, and isolating a request that raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from model_adapters import GenerationRequest, VisionLanguageModel

from .cache import AnswerCache, answer_key
from .isolation import call_isolating_failures


@dataclass
class Output:
    text: str
    error: str | None = None


@dataclass
class CachedGenerator:
    """Wraps one model: looks every request up in the cache, generates the misses in one
    batched call, and stores them. A request that raises costs only itself: its error is
    returned, not raised, and not cached."""

    model: VisionLanguageModel
    cache: AnswerCache

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def __call__(self, requests: Sequence[GenerationRequest]) -> list[Output]:
        keys = [answer_key(self.model.fingerprint, r) for r in requests]
        found = self.cache.get_many(keys)
        missing: dict[str, GenerationRequest] = {}
        for key, request in zip(keys, requests):
            if key not in found:
                missing.setdefault(key, request)
        errors: dict[str, str] = {}
        if missing:
            generated, errors = self._generate(list(missing.items()))
            self.cache.put_many((key, self.model_id, text) for key, text in generated.items())
            found.update(generated)
        return [Output(found[key]) if key in found else Output("", errors[key]) for key in keys]

    def _generate(self, items: list[tuple[str, GenerationRequest]]) -> tuple[dict[str, str], dict[str, str]]:
        outcomes = call_isolating_failures(
            self.model.generate, [r for _, r in items], self.model_id
        )
        generated = {key: text for (key, _), (text, error) in zip(items, outcomes) if error is None}
        errors = {key: error for (key, _), (_, error) in zip(items, outcomes) if error is not None}
        return generated, errors
