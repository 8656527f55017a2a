"""What stages share in one process: loaded models and open caches.

A stage is built from a picklable spec plus a :class:`Resources`. The local engine gives all its
stages one Resources, so a model that plays two roles (the auditor writes captions and questions)
loads once; a Ray actor builds its own in its own process.

Models load when they first have to answer (:class:`LazyModel`): a run whose answers are all in
the cache never loads them.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from model_adapters import GenerationRequest, VisionLanguageModel, load_model

from .cache import AnswerCache, RenderCache, content_key

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """How to load one model: a registered name, a local path or a Hub id, and its runtime settings."""

    name: str
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 8
    trust_remote_code: bool = False

    def load(self) -> VisionLanguageModel:
        logger.info("loading %s", self.name)
        return load_model(
            self.name, dtype=self.dtype, device=self.device, batch_size=self.batch_size, trust_remote_code=self.trust_remote_code
        )


class Stopwatch:
    """Seconds spent inside model and renderer calls, by kind (``model``, ``render``, ``load``): the
    rest of a run is the pipeline's overhead. A measure inside another counts for its own kind only
    (a model loading inside its first call is ``load``, not ``model``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._nested: list[float] = []  # per open measure: seconds of the measures inside it

    @contextmanager
    def measure(self, kind: str) -> Iterator[None]:
        start = time.perf_counter()
        self._nested.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[kind] += elapsed - self._nested.pop()
            if self._nested:
                self._nested[-1] += elapsed


@lru_cache(maxsize=None)
def _fingerprint_code() -> str:
    """The source of what computes a transformers model's id and fingerprint: a memo made by other code is not trusted."""
    import model_adapters.families as families
    import model_adapters.registry as registry
    import model_adapters.transformers_backend as backend

    digest = hashlib.sha256()
    for module in (backend, families, registry):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def checkpoint_identity(ref: ModelRef) -> str | None:
    """Everything a model's ``model_id`` and ``fingerprint`` depend on, read without loading it: for a
    local transformers checkpoint (a registered tiny model, a ``save_pretrained`` directory) its name,
    config and weight files, dtype, device and the code that fingerprints it. None where loading is the
    only way to know (a Hub id: the revision; another backend): such a model loads to tell."""
    from model_adapters import resolve
    from model_adapters.transformers_backend import local_fingerprint, resolve_device, resolve_dtype

    path, spec = resolve(ref.name)
    if spec.backend != "transformers" or not Path(path).is_dir():
        return None
    device = resolve_device(ref.device)
    return content_key(
        name=ref.name, kwargs=spec.kwargs, weights=local_fingerprint(Path(path)), dtype=str(resolve_dtype(ref.dtype, device)),
        device=device, trust_remote_code=ref.trust_remote_code, code=_fingerprint_code(),
    )


class LazyModel:
    """A model behind the ``model_adapters`` protocol that loads when it first has to answer.

    The answer cache's keys need its ``model_id`` and ``fingerprint``: they come from the cache's
    record of an earlier load of the same checkpoint (:func:`checkpoint_identity`), so a run whose
    answers are all cached never loads the model. Without such a record it loads at once, and the
    record is made."""

    def __init__(self, ref: ModelRef, resources: Resources, cache: AnswerCache):
        self.ref = ref
        self._resources = resources
        self._cache = cache
        self._model: VisionLanguageModel | None = None
        self._identity = checkpoint_identity(ref)
        known = cache.known_model(self._identity) if self._identity else None
        if known is None:
            self.load()
        else:
            self.model_id, self.fingerprint = known

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> VisionLanguageModel:
        if self._model is None:
            with self._resources.clock.measure("load"):
                model = self._resources.model(self.ref)
            if self._identity:
                if getattr(self, "fingerprint", model.fingerprint) != model.fingerprint:
                    logger.warning("%s: the cache's record of its fingerprint was stale; recorded again", self.ref.name)
                self._cache.remember_model(self._identity, model.model_id, model.fingerprint)
            self.model_id, self.fingerprint = model.model_id, model.fingerprint
            self._model = model
        return self._model

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        return self.load().generate(requests)


class Resources:
    def __init__(self) -> None:
        self.clock = Stopwatch()
        self._models: dict[ModelRef, VisionLanguageModel] = {}
        self._lazy: dict[tuple[ModelRef, str | None], LazyModel] = {}
        self._answer_caches: dict[str | None, AnswerCache] = {}
        self._render_caches: dict[str | None, RenderCache] = {}

    def model(self, ref: ModelRef) -> VisionLanguageModel:
        if ref not in self._models:
            self._models[ref] = ref.load()
        return self._models[ref]

    def lazy_model(self, ref: ModelRef, cache: str | None) -> LazyModel:
        """``ref`` as a :class:`LazyModel` whose id and fingerprint are remembered in the answer cache at ``cache``."""
        if (ref, cache) not in self._lazy:
            self._lazy[(ref, cache)] = LazyModel(ref, self, self.answer_cache(cache))
        return self._lazy[(ref, cache)]

    def answer_cache(self, path: str | None) -> AnswerCache:
        """The SQLite answer cache at ``path`` (None: in memory, shared by this process's stages)."""
        if path not in self._answer_caches:
            self._answer_caches[path] = AnswerCache(Path(path) if path else None)
        return self._answer_caches[path]

    def render_cache(self, root: str | None) -> RenderCache:
        if root not in self._render_caches:
            self._render_caches[root] = RenderCache(Path(root) if root else None)
        return self._render_caches[root]

    def cache_counts(self) -> tuple[int, int]:
        """Answer-cache hits and misses so far, over every cache this process opened."""
        return sum(c.hits for c in self._answer_caches.values()), sum(c.misses for c in self._answer_caches.values())

    def close(self) -> None:
        for cache in self._answer_caches.values():
            cache.close()
        self._answer_caches.clear()
