"""The render stage of one image-changing mode: the auditor's caption becomes a regenerated image,
or its edit command an edited one, through a registered renderer backend (cached by content)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..modes import MODES, alters_image
from ..records import WorkItem, image_sha256
from ..registry import part
from ..renderers import RENDERERS, CachedRenderer, RenderSettings
from ..resources import Resources


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


class RenderStage:
    def __init__(self, spec: RenderSpec, resources: Resources):
        self.spec = spec
        self.name = spec.name
        self._resources = resources
        self._renderer: CachedRenderer | None = None

    @property
    def renderer(self) -> CachedRenderer:
        if self._renderer is None:
            backend = RENDERERS.build(self.spec.backend, mode=self.spec.mode, model=self.spec.model, settings=self.spec.settings)
            self._renderer = CachedRenderer(backend, self._resources.render_cache(self.spec.cache), self._resources.clock)
        return self._renderer

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
        for i, (image, error) in zip(todo, outcomes):
            if image is None:
                batch[i] = batch[i].fail(self.name, f"{renderer_id} raised {error}", "check the renderer, or the auditor's text it could not render")
            else:
                batch[i] = batch[i].but(image=image, image_sha=image_sha256(image), renderer_id=renderer_id)
        return batch
