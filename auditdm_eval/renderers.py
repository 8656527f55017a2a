"""Renderers turn the auditor's text into the image the answerers see.

``identity`` keeps the original image; ``regenerate`` renders the auditor's caption with a
diffusers text-to-image pipeline (FLUX.1-dev in the paper); ``edit`` applies the auditor's
command with an image-editing pipeline (FLUX.1-Kontext-dev in the paper). Pipelines load from
a Hub id or a local path through ``DiffusionPipeline.from_pretrained``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from .cache import RenderCache, content_key
from .isolation import call_isolating_failures
from .records import image_sha256
from .registry import Registry
from .resources import Stopwatch

PIPELINE_ALIASES: dict[str, str] = {
    "flux.1-dev": "black-forest-labs/FLUX.1-dev",
    "flux.1-schnell": "black-forest-labs/FLUX.1-schnell",
    "flux.1-kontext-dev": "black-forest-labs/FLUX.1-Kontext-dev",
}
TINY_PIPELINES = ("tiny-flux", "tiny-flux-kontext")


def resolve_pipeline(name_or_path: str) -> str:
    """A registered alias, a tiny random pipeline (built on first use), a Hub id or a local path."""
    if name_or_path in TINY_PIPELINES:
        from model_adapters import tiny
        from model_adapters.registry import tiny_root

        return str(tiny.ensure_tiny(name_or_path, tiny_root()))
    return PIPELINE_ALIASES.get(name_or_path, name_or_path)


class Renderer(Protocol):
    renderer_id: str
    fingerprint: str

    def render(self, sources: Sequence[Image.Image], texts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]: ...


@dataclass
class IdentityRenderer:
    renderer_id: str = "identity"
    fingerprint: str = "identity"

    def render(self, sources, texts, seeds):
        return list(sources)


@dataclass(frozen=True)
class RenderSettings:
    height: int = 1024
    width: int = 1024
    num_inference_steps: int = 28
    guidance_scale: float = 3.5
    dtype: str = "auto"
    device: str = "auto"
    batch_size: int = 4


class DiffusersRenderer:
    """Shared loading and batching for the diffusers-backed renderers."""

    kind = ""

    def __init__(self, name_or_path: str, settings: RenderSettings | None = None):
        import diffusers
        import torch

        from model_adapters.transformers_backend import local_fingerprint, resolve_device, resolve_dtype

        self.settings = settings or RenderSettings()
        self.renderer_id = name_or_path
        name_or_path = resolve_pipeline(name_or_path)
        device = resolve_device(self.settings.device)
        dtype = resolve_dtype(self.settings.dtype, device)
        try:
            self.pipe = diffusers.DiffusionPipeline.from_pretrained(name_or_path, dtype=dtype)
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"could not load the {self.kind} pipeline {name_or_path!r}: {error}\nPass a Hub id that is in "
                "the local Hugging Face cache or a local directory written by DiffusionPipeline.save_pretrained."
            ) from error
        self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self._generator_device = "cpu"
        self._torch = torch
        path = Path(name_or_path)
        weights = local_fingerprint(path / "transformer") if path.is_dir() else name_or_path
        self.fingerprint = content_key(kind=self.kind, weights=weights, settings=asdict(self.settings))[:20]

    def _call_kwargs(self) -> dict[str, Any]:
        s = self.settings
        kwargs = {
            "height": s.height,
            "width": s.width,
            "num_inference_steps": s.num_inference_steps,
            "guidance_scale": s.guidance_scale,
        }
        parameters = inspect.signature(self.pipe.__call__).parameters
        if "max_area" in parameters:  # Kontext: without these it resizes to ~1 megapixel
            kwargs.setdefault("max_area", s.height * s.width)
            kwargs.setdefault("_auto_resize", False)
        return kwargs

    def _generators(self, seeds: Sequence[int]) -> list[Any]:
        return [self._torch.Generator(self._generator_device).manual_seed(int(seed)) for seed in seeds]

    def render(self, sources, texts, seeds):
        images: list[Image.Image] = []
        size = self.settings.batch_size
        for start in range(0, len(texts), size):
            stop = start + size
            images.extend(self._render_batch(list(sources[start:stop]), list(texts[start:stop]), list(seeds[start:stop])))
        return images


class RegenerateRenderer(DiffusersRenderer):
    kind = "regenerate"

    def _render_batch(self, sources, texts, seeds):
        result = self.pipe(prompt=texts, generator=self._generators(seeds), **self._call_kwargs())
        return [image.convert("RGB") for image in result.images]


class EditRenderer(DiffusersRenderer):
    kind = "edit"

    def _render_batch(self, sources, texts, seeds):
        size = (self.settings.width, self.settings.height)
        inputs = [image.convert("RGB").resize(size, Image.Resampling.BICUBIC) for image in sources]
        result = self.pipe(image=inputs, prompt=texts, generator=self._generators(seeds), **self._call_kwargs())
        return [image.convert("RGB") for image in result.images]


RENDERERS: Registry[Renderer] = Registry("renderer", "auditdm.renderers")
"""Renderer backends by name; a factory takes (mode, model, settings) and returns a :class:`Renderer`
for that mode: ``regenerate`` renders the auditor's caption, ``edit`` applies its command."""


@RENDERERS.register("identity")
def identity_renderer(mode: str, model: str, settings: RenderSettings) -> Renderer:
    return IdentityRenderer()


@RENDERERS.register("diffusers")
def diffusers_renderer(mode: str, model: str, settings: RenderSettings) -> Renderer:
    """A diffusers pipeline by alias, Hub id or local path: text-to-image for regenerate, image editing for edit."""
    pipelines = {"regenerate": RegenerateRenderer, "edit": EditRenderer}
    if mode not in pipelines:
        raise ValueError(f"the diffusers renderer serves modes {', '.join(pipelines)}, not {mode!r}")
    return pipelines[mode](model, settings)


@dataclass
class CachedRenderer:
    """Looks each (renderer, source image, text, seed) up on disk before rendering it; renders the
    misses in batches, and a job that raises costs only itself."""

    renderer: Renderer
    cache: RenderCache
    clock: Stopwatch = field(default_factory=Stopwatch)

    @property
    def renderer_id(self) -> str:
        return self.renderer.renderer_id

    def render(
        self, sources: Sequence[Image.Image], texts: Sequence[str], seeds: Sequence[int], source_shas: Sequence[str] | None = None
    ) -> list[tuple[Image.Image | None, str | None]]:
        """(image, None) or (None, error) per job, in order."""
        shas = list(source_shas) if source_shas is not None else [image_sha256(image) for image in sources]
        keys = [
            content_key(renderer=self.renderer.fingerprint, source=sha, text=text, seed=seed)
            for sha, text, seed in zip(shas, texts, seeds)
        ]
        outcomes: list[tuple[Image.Image | None, str | None]] = [(self.cache.get(key), None) for key in keys]
        todo = [i for i, (image, _) in enumerate(outcomes) if image is None]
        if todo:
            load = getattr(self.renderer, "load", None)  # a lazily loaded pipeline loads here: if it cannot, the run stops
            if load is not None:
                load()
            jobs = [(sources[i], texts[i], seeds[i]) for i in todo]
            with self.clock.measure("render"):
                rendered = call_isolating_failures(
                    lambda batch: self.renderer.render(*(list(column) for column in zip(*batch))), jobs, self.renderer_id
                )
            for i, (image, error) in zip(todo, rendered):
                if image is not None:
                    self.cache.put(keys[i], image)
                outcomes[i] = (image, error)
        return outcomes
