"""What stages share in one process: loaded models and open caches.

A stage is built from a picklable spec plus a :class:`Resources`. The local engine gives all its
stages one Resources, so a model that plays two roles (the auditor writes captions and questions)
loads once; a Ray actor builds its own in its own process.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from model_adapters import VisionLanguageModel, load_model

from .cache import AnswerCache, RenderCache

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
    """Seconds spent inside model and renderer calls, by kind: the rest of a run is the pipeline's overhead."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def measure(self, kind: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[kind] += time.perf_counter() - start


class Resources:
    def __init__(self) -> None:
        self.clock = Stopwatch()
        self._models: dict[ModelRef, VisionLanguageModel] = {}
        self._answer_caches: dict[str | None, AnswerCache] = {}
        self._render_caches: dict[str | None, RenderCache] = {}

    def model(self, ref: ModelRef) -> VisionLanguageModel:
        if ref not in self._models:
            self._models[ref] = ref.load()
        return self._models[ref]

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
