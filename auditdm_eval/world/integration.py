"""Plugs the world into the project's registries: model names (through ``model_adapters``), the
``world`` renderer backend, the ``world:`` image source and the ``world`` ground-truth annotator.
Called once when :mod:`auditdm_eval` is imported, so every process that runs stages (a Ray actor
too) knows the world's names."""

from __future__ import annotations

from typing import Any

from PIL import Image


def world_renderer(mode: str, model: str, settings: Any) -> Any:
    from . import RENDERERS

    kinds = {"regenerate": "world-regenerate", "edit": "world-edit"}
    if mode not in kinds:
        raise ValueError(f"the world renderer serves modes {', '.join(kinds)}, not {mode!r}")
    return RENDERERS[kinds[mode]](model, settings)


def world_annotator() -> Any:
    from .truth import ground_truth

    def annotate(image: Image.Image, question: str) -> dict[str, Any]:
        return {"truth": ground_truth(image, question)}

    return annotate


def world_auditor(name: str) -> Any:
    def build(root: Any) -> Any:
        from ..training.warm_start import WARM_STARTS, ensure_world_auditor

        return ensure_world_auditor(root, WARM_STARTS[name][0])

    return build


def install() -> None:
    from model_adapters.registry import ModelSpec, register_model

    from ..renderers import RENDERERS
    from ..sources import SOURCES
    from ..stages.annotate import ANNOTATORS
    from ..training.warm_start import WARM_STARTS
    from . import register, world_source

    register()
    for name, (_, description) in WARM_STARTS.items():
        register_model(ModelSpec(name=name, build=world_auditor(name), description=description))
    RENDERERS.register("world", world_renderer)
    ANNOTATORS.register("world", world_annotator)
    SOURCES.register("world", lambda rest, options: world_source(rest, options))
