"""Asking a model a batch of requests: cached, batched, and isolating a request that raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from model_adapters import GenerationRequest, VisionLanguageModel
from model_adapters.protocol import single_samples

from .cache import AnswerCache, answer_key
from .isolation import call_isolating_failures
from .resources import LazyModel, Resources, Stopwatch


@dataclass
class Output:
    """One request's outcome: its samples (one unless the request asked for more), or an error."""

    samples: tuple[str, ...] = ()
    error: str | None = None

    @property
    def text(self) -> str:
        return self.samples[0] if self.samples else ""


@dataclass
class CachedGenerator:
    """Wraps one model: looks every request up in the cache, generates the misses in one
    batched call, and stores them. A request that raises costs only itself: its error is
    returned, not raised, and not cached. A request for several samples is asked as that many
    one-sample requests with derived seeds, each cached on its own."""

    model: VisionLanguageModel
    cache: AnswerCache
    clock: Stopwatch = field(default_factory=Stopwatch)

    @property
    def model_id(self) -> str:
        return self.model.model_id

    def __call__(self, requests: Sequence[GenerationRequest]) -> list[Output]:
        expanded = [single_samples(request) for request in requests]
        singles = [one for group in expanded for one in group]
        keys = [answer_key(self.model.fingerprint, r) for r in singles]
        found = self.cache.get_many(keys)
        missing: dict[str, GenerationRequest] = {}
        for key, request in zip(keys, singles):
            if key not in found:
                missing.setdefault(key, request)
        errors: dict[str, str] = {}
        if missing:
            generated, errors = self._generate(list(missing.items()))
            self.cache.put_many((key, self.model_id, text) for key, text in generated.items())
            found.update(generated)
        outputs, position = [], 0
        for group in expanded:
            group_keys = keys[position : position + len(group)]
            position += len(group)
            failed = next((errors[key] for key in group_keys if key not in found), None)
            outputs.append(Output((), failed) if failed else Output(tuple(found[key] for key in group_keys)))
        return outputs

    def _generate(self, items: list[tuple[str, GenerationRequest]]) -> tuple[dict[str, str], dict[str, str]]:
        if isinstance(self.model, LazyModel):
            self.model.load()  # before the per-request isolation: a model that cannot load stops the run
        with self.clock.measure("model"):
            outcomes = call_isolating_failures(self.model.generate, [r for _, r in items], self.model_id)
        generated = {key: text for (key, _), (text, error) in zip(items, outcomes) if error is None}
        errors = {key: error for (key, _), (_, error) in zip(items, outcomes) if error is not None}
        return generated, errors


class ModelStage:
    """The base of a stage around one model (``spec.model``, ``spec.cache``): its
    :class:`CachedGenerator` is built on first use, so a reward whose policy writes every text never
    loads the auditor, and a warm run that the cache answers never loads a model."""

    def __init__(self, spec: Any, resources: Resources):
        self.spec = spec
        self.name = spec.name
        self._resources = resources

    @cached_property
    def generator(self) -> CachedGenerator:
        resources, spec = self._resources, self.spec
        return CachedGenerator(resources.lazy_model(spec.model, spec.cache), resources.answer_cache(spec.cache), resources.clock)

    def prepare(self) -> None:
        self.generator  # noqa: B018 - builds it: loads the model unless the cache knows it
