"""The render stage of one image-changing mode: the auditor's caption becomes a regenerated image,
or its edit command an edited one, through a registered renderer backend (cached by content)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from ..cache import RenderCache, content_key
from ..modes import MODES, alters_image
from ..records import WorkItem, image_sha256
from ..registry import part
from ..renderers import RENDERERS, CachedRenderer, Renderer, RenderSettings, resolve_pipeline
from ..resources import Resources, Stopwatch


@dataclass(frozen=True)
class RenderSpec:
    mode: str  # regenerate | edit
    backend: str  # a name in RENDERERS: diffusers, identity, world, ...
    model: str  # the backend's model: pipeline alias, Hub id or local path
    settings: RenderSettings = RenderSettings()
    cache: str | None = None  # render cache folder; None: no cache

    def __post_init__(self) -> None:
        if self.mode not in MODES or not alters_image(self.mode):
            raise ValueError(f"a render stage serves an image-changing mode ({', '.join(m for m in MODES if alters_image(m))}), not {self.mode!r}")
        RENDERERS.get(self.backend)

    @property
    def name(self) -> str:
        return f"render:{self.mode}"

    def build(self, resources: Resources) -> RenderStage:
        return RenderStage(self, resources)

    def part(self) -> dict[str, Any]:
        return part(self.backend, model=self.model, **asdict(self.settings))


@lru_cache(maxsize=None)
def _renderer_code() -> str:
    """The source of what computes a diffusers renderer's id and fingerprint."""
    from .. import renderers

    return hashlib.sha256(Path(renderers.__file__).read_bytes()).hexdigest()[:16]


def pipeline_identity(spec: RenderSpec) -> str | None:
    """Everything a diffusers renderer's id and fingerprint depend on, read without loading it (a local
    pipeline: its files, the settings, the code); None where only loading tells (Hub ids, other backends)."""
    if spec.backend != "diffusers":
        return None
    from model_adapters.transformers_backend import local_fingerprint

    path = Path(resolve_pipeline(spec.model))
    if not path.is_dir():
        return None
    parts = sorted(p for p in path.iterdir() if p.is_dir())
    return content_key(
        backend=spec.backend, mode=spec.mode, model=spec.model, settings=asdict(spec.settings), code=_renderer_code(),
        weights={p.name: local_fingerprint(p) for p in parts},
    )


class LazyRenderer:
    """A renderer backend that loads when it first has to render; its id and fingerprint (the render
    cache's keys need them) come from the cache's record of an earlier load when there is one, so a
    run whose renders are all cached never loads the pipeline."""

    def __init__(self, spec: RenderSpec, cache: RenderCache, clock: Stopwatch):
        self.spec, self._cache, self._clock = spec, cache, clock
        self._renderer: Renderer | None = None
        self._identity = pipeline_identity(spec)
        known = self._cache.known_renderer(self._identity) if self._identity else None
        if known is None:
            self.load()
        else:
            self.renderer_id, self.fingerprint = known

    def load(self) -> Renderer:
        if self._renderer is None:
            with self._clock.measure("load"):
                spec = self.spec
                renderer = RENDERERS.build(spec.backend, mode=spec.mode, model=spec.model, settings=spec.settings)
            if self._identity:
                self._cache.remember_renderer(self._identity, renderer.renderer_id, renderer.fingerprint)
            self.renderer_id, self.fingerprint = renderer.renderer_id, renderer.fingerprint
            self._renderer = renderer
        return self._renderer

    def render(self, sources: Sequence[Image.Image], texts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        return self.load().render(sources, texts, seeds)


class RenderStage:
    def __init__(self, spec: RenderSpec, resources: Resources):
        self.spec = spec
        self.name = spec.name
        self._resources = resources

    @cached_property
    def renderer(self) -> CachedRenderer:
        cache, clock = self._resources.render_cache(self.spec.cache), self._resources.clock
        return CachedRenderer(LazyRenderer(self.spec, cache, clock), cache, clock)

    def prepare(self) -> None:
        self.renderer  # noqa: B018 - builds it: loads the model unless the cache knows it

    def __call__(self, batch: list[WorkItem]) -> list[WorkItem]:
        batch = list(batch)
        field = "caption" if MODES[self.spec.mode].auditor_writes == "caption" else "edit_command"
        todo = [i for i, item in enumerate(batch) if item.alive and item.mode == self.spec.mode and item.image is None and getattr(item, field)]
        if not todo:
            return batch
        outcomes = self.renderer.render(
            [batch[i].source.image for i in todo],
            [getattr(batch[i], field) for i in todo],
            [batch[i].seed for i in todo],
            [batch[i].source.image_sha for i in todo],
        )
        renderer_id = self.renderer.renderer_id
        cache = self.renderer.cache
        for i, (image, error) in zip(todo, outcomes):
            if image is None:
                batch[i] = batch[i].fail(self.name, f"{renderer_id} raised {error}", "check the renderer, or the auditor's text it could not render")
            else:
                batch[i] = batch[i].but(
                    image=image, image_sha=image_sha256(image), renderer_id=renderer_id, image_encoded=cache.encoded_png(image)
                )
        return batch
