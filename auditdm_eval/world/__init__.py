"""The planted-weakness world: procedurally drawn scenes whose ground truth is known.

Scenes (:mod:`.scene`) of flat coloured shapes, clocks and signs on a 3x3 grid are drawn
(:mod:`.draw`) and read back from pixels (:mod:`.decode`); the world's language (:mod:`.language`)
asks questions, answers them from a scene, writes and reads dense captions and edit commands;
world models (:mod:`.models`) answer from the decoded scene: the oracle, noisy oracles, and targets
with planted weaknesses (a user's own through :func:`register_weakness`); programmatic renderers
(:mod:`.renderers`) regenerate and edit without losing the ground truth (:mod:`.truth`).

:func:`register` plugs the world into ``model_adapters`` (the ``world`` backend, the model names,
the ``world-target:`` prefixes) and returns the renderer classes and the image source for the
project's registries.
"""

from __future__ import annotations

from typing import Any

from .decode import decode
from .draw import DEFAULT_SIZE, MIN_SIZE, PALETTE, draw
from .language import (
    ANSWER_SPACES,
    EDIT_ACTIONS,
    QUESTION_TYPES,
    WORLD_VOCABULARY,
    Edit,
    Query,
    Ref,
    answer,
    answer_question,
    apply_edit,
    caption_to_scene,
    describe,
    edit_scene,
    edit_space,
    parse_caption,
    parse_edit,
    parse_question,
    query_space,
    question_space,
    tokenize,
)
from .models import (
    BUILTIN_WEAKNESSES,
    WEAKNESSES,
    WorldModel,
    exposing_questions,
    register_weakness,
    resolve_weakness,
    weak_answer,
    weakness_from_view,
)
from .renderers import WorldEditRenderer, WorldRegenerateRenderer
from .scene import COLORS, POSITIONS, SHAPES, SIGN_WORDS, SIZES, Scene, SceneObject, sample_scene, sample_scenes
from .source import world_source
from .truth import failure_type, ground_truth

RENDERERS = {"world-regenerate": WorldRegenerateRenderer, "world-edit": WorldEditRenderer}
SOURCES = {"world": world_source}


def register() -> dict[str, Any]:
    """Register the world with ``model_adapters`` (idempotent, no torch of its own).

    Adds the ``world`` backend, the names ``world-oracle``, ``world-oracle-noisy-{a,b,c}``,
    ``world-oracle-correlated-{a,b,c}``, ``world-target-{redgreen,mirror,undercount,none}``, and the
    prefixes ``world-target:<weakness or module:function>``, ``world-oracle-noisy:<rate>[:<seed>]``,
    ``world-oracle-correlated:<rate>[:<seed>[:<correlation>]]``.

    Returns ``{"models": [names], "renderers": {"world-regenerate": cls, "world-edit": cls},
    "sources": {"world": world_source}}`` for the project's renderer and source registries
    (``world_source(spec, options)`` takes ``world:<n>[:<seed>[:<size>]]`` with or without the
    ``world:`` prefix).
    """
    from model_adapters.registry import ModelSpec, register_backend, register_model, register_prefix

    from .models import MODEL_PREFIXES, model_kwargs, parse_model_name

    register_backend("world", WorldModel)
    names = []
    for name, (kwargs, description) in model_kwargs().items():
        register_model(ModelSpec(name=name, path=name, backend="world", kwargs=kwargs, description=description))
        names.append(name)

    def prefixed(name: str) -> ModelSpec:
        return ModelSpec(name=name, path=name, backend="world", kwargs=parse_model_name(name),
                         description="world model named by its settings")

    for prefix in MODEL_PREFIXES:
        register_prefix(prefix, prefixed)
    return {"models": names, "renderers": dict(RENDERERS), "sources": dict(SOURCES)}


__all__ = [
    "ANSWER_SPACES", "BUILTIN_WEAKNESSES", "COLORS", "DEFAULT_SIZE", "EDIT_ACTIONS", "MIN_SIZE", "PALETTE",
    "POSITIONS", "QUESTION_TYPES", "RENDERERS", "SHAPES", "SIGN_WORDS", "SIZES", "SOURCES", "WEAKNESSES",
    "WORLD_VOCABULARY", "Edit", "Query", "Ref", "Scene", "SceneObject", "WorldEditRenderer", "WorldModel",
    "WorldRegenerateRenderer", "answer", "answer_question", "apply_edit", "caption_to_scene", "decode", "describe",
    "draw", "edit_scene", "edit_space", "exposing_questions", "failure_type", "ground_truth", "parse_caption",
    "parse_edit", "parse_question", "query_space", "question_space", "register", "register_weakness",
    "resolve_weakness", "sample_scene", "sample_scenes", "tokenize", "weak_answer", "weakness_from_view",
    "world_source",
]
