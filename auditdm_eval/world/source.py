"""The world as an image pool: ``world:<n>[:<seed>[:<size>]]``.

Scene ``i`` of pool ``seed`` is :func:`~.scene.sample_scene(seed, i) <auditdm_eval.world.scene.sample_scene>`,
so ``world:200`` (seed 0) and ``world:200:7`` (a held-out pool) are fixed sets of scenes. Each
item carries its scene in ``extra["scene"]`` and, like a VQAv2 seed question, one random valid
question about the scene with its true answer (a question type drawn uniformly among the types
that apply to the scene, then a question of that type).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .draw import DEFAULT_SIZE, MIN_SIZE, draw
from .language import QUESTION_TYPES, answer, query_space
from .scene import Scene, sample_scene, scene_rng

SPEC_HELP = "world:<number of scenes>[:<seed>[:<image size>]], e.g. world:200 or world:200:7 (a held-out pool)"


def parse_world_spec(spec: str) -> tuple[int, int, int]:
    """(number of scenes, seed, image size) of ``world:200``, ``world:200:7``, ``200:7:192``."""
    rest = spec.removeprefix("world:")
    parts = rest.split(":") if rest else []
    try:
        count = int(parts[0]) if parts and parts[0] else 100
        seed = int(parts[1]) if len(parts) > 1 and parts[1] else 0
        size = int(parts[2]) if len(parts) > 2 and parts[2] else DEFAULT_SIZE
    except ValueError:
        raise ValueError(f"cannot read the world pool {spec!r}: expected {SPEC_HELP}") from None
    if len(parts) > 3 or count < 0 or size < MIN_SIZE:
        raise ValueError(f"cannot read the world pool {spec!r}: expected {SPEC_HELP} (image size >= {MIN_SIZE})")
    return count, seed, size


def seed_question(scene: Scene, seed: int, index: int) -> tuple[str, str] | None:
    """One random valid (question, true answer) about ``scene``: a type uniformly, then a question of it."""
    by_type: dict[str, list] = {}
    for query in query_space(scene):
        by_type.setdefault(query.qtype, []).append(query)
    types = [t for t in QUESTION_TYPES if t in by_type]
    if not types:
        return None
    rng = scene_rng(seed, index, 0x9E57)
    queries = by_type[types[int(rng.integers(len(types)))]]
    query = queries[int(rng.integers(len(queries)))]
    truth = answer(query, scene)
    assert truth is not None
    return query.text(), truth


def world_scenes(count: int, seed: int = 0) -> Iterator[tuple[str, Scene]]:
    for index in range(count):
        yield f"world:{seed}:{index:06d}", sample_scene(seed, index)


def world_source(spec: str, options: Any = None) -> Iterator[Any]:
    """``SourceImage`` items of the world pool ``spec`` (honours ``options.limit``)."""
    from ..records import SourceImage

    count, seed, size = parse_world_spec(spec)
    limit = getattr(options, "limit", None)
    if limit is not None:
        count = min(count, int(limit))
    for index in range(count):
        scene = sample_scene(seed, index)
        qa = seed_question(scene, seed, index)
        yield SourceImage(
            source_id=f"world:{seed}:{index:06d}",
            image=draw(scene, size),
            question=qa[0] if qa else None,
            answer=qa[1] if qa else None,
            extra={"scene": scene.to_dict()},
        )
