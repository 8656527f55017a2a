"""Programmatic renderers that keep the ground truth known after regenerating or editing.

- :class:`WorldRegenerateRenderer` (``world-regenerate``) reads the auditor's caption as a scene
  (:func:`~.language.caption_to_scene`; what the caption leaves out, such as an object's size or
  cell, is filled from the probe's seed) and draws it.
- :class:`WorldEditRenderer` (``world-edit``) decodes the source image's scene from its pixels,
  applies the parsed edit command (:func:`~.language.edit_scene`; an added object's unstated
  attributes come from the seed) and draws the result.

Both draw with :func:`~.draw.draw`, so the oracle decodes exactly the scene they meant. A text they
cannot use raises ValueError naming what was wrong and what a valid text looks like; the engine
records it as that probe's failure and goes on. Both implement the project's renderer protocol
(``renderer_id``, ``fingerprint``, ``render(sources, texts, seeds)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from PIL import Image

from .decode import decode
from .draw import DEFAULT_SIZE, MIN_SIZE, draw
from .language import caption_to_scene, edit_scene
from .models import world_code_hash


def _check_size(size: int) -> int:
    if int(size) < MIN_SIZE:
        raise ValueError(f"world images need at least {MIN_SIZE} px on a side (got {size})")
    return int(size)


class WorldRegenerateRenderer:
    """Caption -> scene -> image. ``size``: side of the drawn image in pixels.

    The positional arguments of the project's renderer factories (a pipeline name, diffusion
    settings) are accepted and ignored: world images have their own size.
    """

    def __init__(self, name_or_path: str | None = None, settings: Any = None, *, size: int = DEFAULT_SIZE, **_ignored: Any):
        self.size = _check_size(size)
        self.renderer_id = "world-regenerate"
        self.fingerprint = f"world-regenerate-{world_code_hash()}-{self.size}"

    def render_one(self, text: str, seed: int) -> Image.Image:
        return draw(caption_to_scene(text, int(seed)), self.size)

    def render(self, sources: Sequence[Image.Image], texts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        return [self.render_one(text, seed) for text, seed in zip(texts, seeds)]


class WorldEditRenderer:
    """Source image -> decoded scene -> edited scene -> image, drawn at the source's size (or ``size``)."""

    def __init__(self, name_or_path: str | None = None, settings: Any = None, *, size: int | None = None, **_ignored: Any):
        self.size = _check_size(size) if size else None
        self.renderer_id = "world-edit"
        self.fingerprint = f"world-edit-{world_code_hash()}-{self.size or 'source'}"

    def render_one(self, source: Image.Image, text: str, seed: int) -> Image.Image:
        scene = decode(source)
        if scene is None:
            raise ValueError(
                "the source image is not a world scene (its pixels do not decode to one): the world-edit renderer "
                "edits images drawn by the world (world:<n> images, world renderers' output)"
            )
        edited = edit_scene(scene, text, int(seed))
        size = self.size or (source.size if min(source.size) >= MIN_SIZE else DEFAULT_SIZE)
        return draw(edited, size)

    def render(self, sources: Sequence[Image.Image], texts: Sequence[str], seeds: Sequence[int]) -> list[Image.Image]:
        return [self.render_one(source, text, seed) for source, text, seed in zip(sources, texts, seeds)]
