"""Scenes of the planted-weakness world: typed objects on a 3x3 grid, JSON round trip, a seeded sampler.

A scene holds at most one object per grid cell. Every object has a colour, a shape, a size and a
cell; a clock also shows an hour (its single hand points at it) and a sign carries a word. Clocks
and signs always come large, so that the hand and the letters stay readable from pixels at the
smallest supported image size. Counts are derived (:meth:`Scene.count`).

The sampler draws every attribute independently and uniformly (colour, plain shape, size, cell);
it knows nothing about any weakness a target may have.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

GRID = 3
COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")
PLAIN_SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
SPECIAL_SHAPES: tuple[str, ...] = ("clock", "sign")
SHAPES: tuple[str, ...] = PLAIN_SHAPES + SPECIAL_SHAPES
SIZES: tuple[str, ...] = ("small", "large")
ROWS: tuple[str, ...] = ("top", "middle", "bottom")
COLS: tuple[str, ...] = ("left", "center", "right")
HOURS: tuple[int, ...] = tuple(range(1, 13))
SIGN_WORDS: tuple[str, ...] = ("stop", "exit", "open", "sale", "bus", "taxi", "park", "cafe")

MIN_OBJECTS = 2
MAX_OBJECTS = 7
SPECIAL_RATE = 0.15  # share of sampled objects that are a clock or a sign (half each)


def position_name(row: int, col: int) -> str:
    """The natural name of a grid cell: ``top left``, ``top center``, ``middle left``, ``center``, ..."""
    if row == 1 and col == 1:
        return "center"
    return f"{ROWS[row]} {COLS[col]}"


POSITIONS: tuple[str, ...] = tuple(position_name(r, c) for r in range(GRID) for c in range(GRID))
CELL_OF_POSITION: dict[str, tuple[int, int]] = {position_name(r, c): (r, c) for r in range(GRID) for c in range(GRID)}


@dataclass(frozen=True)
class SceneObject:
    """One object: colour, shape, size, grid cell (row 0 = top, col 0 = left), and a clock's hour or a sign's word."""

    color: str
    shape: str
    size: str
    row: int
    col: int
    hour: int | None = None
    word: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.color not in COLORS:
            problems.append(f"color {self.color!r} is not one of {', '.join(COLORS)}")
        if self.shape not in SHAPES:
            problems.append(f"shape {self.shape!r} is not one of {', '.join(SHAPES)}")
        if self.size not in SIZES:
            problems.append(f"size {self.size!r} is not one of {', '.join(SIZES)}")
        if not (0 <= self.row < GRID and 0 <= self.col < GRID):
            problems.append(f"cell ({self.row}, {self.col}) is outside the {GRID}x{GRID} grid")
        if self.shape in SPECIAL_SHAPES and self.size != "large":
            problems.append(f"a {self.shape} is always large")
        if (self.shape == "clock") != (self.hour is not None):
            problems.append("a clock, and only a clock, has an hour")
        elif self.hour is not None and self.hour not in HOURS:
            problems.append(f"hour {self.hour!r} is not one of 1..12")
        if (self.shape == "sign") != (self.word is not None):
            problems.append("a sign, and only a sign, has a word")
        elif self.word is not None and self.word not in SIGN_WORDS:
            problems.append(f"word {self.word!r} is not one of {', '.join(SIGN_WORDS)}")
        if problems:
            raise ValueError("invalid scene object: " + "; ".join(problems))

    @property
    def cell(self) -> tuple[int, int]:
        return (self.row, self.col)

    @property
    def position(self) -> str:
        return position_name(self.row, self.col)

    def replace(self, **changes: Any) -> SceneObject:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"color": self.color, "shape": self.shape, "size": self.size, "position": self.position}
        if self.hour is not None:
            out["hour"] = self.hour
        if self.word is not None:
            out["word"] = self.word
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneObject:
        if "position" in data:
            row, col = CELL_OF_POSITION[data["position"]]
        else:
            row, col = int(data["row"]), int(data["col"])
        hour = data.get("hour")
        return cls(
            color=data["color"], shape=data["shape"], size=data["size"], row=row, col=col,
            hour=None if hour is None else int(hour), word=data.get("word"),
        )


@dataclass(frozen=True)
class Scene:
    """Objects on the grid, kept in reading order (row by row, left to right), one per cell at most."""

    objects: tuple[SceneObject, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        objects = tuple(sorted(self.objects, key=lambda o: o.cell))
        cells = [o.cell for o in objects]
        if len(set(cells)) != len(cells):
            taken = sorted({position_name(*c) for c in cells if cells.count(c) > 1})
            raise ValueError(f"two objects in one cell ({', '.join(taken)}): a scene holds one object per cell")
        object.__setattr__(self, "objects", objects)

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self):
        return iter(self.objects)

    def at(self, row: int, col: int) -> SceneObject | None:
        for obj in self.objects:
            if obj.cell == (row, col):
                return obj
        return None

    def free_cells(self) -> list[tuple[int, int]]:
        taken = {o.cell for o in self.objects}
        return [(r, c) for r in range(GRID) for c in range(GRID) if (r, c) not in taken]

    def count(self, predicate: Callable[[SceneObject], bool] | None = None) -> int:
        return sum(1 for o in self.objects if predicate is None or predicate(o))

    def map(self, fn: Callable[[SceneObject], SceneObject]) -> Scene:
        """The scene with ``fn`` applied to every object (a weakness's view of the scene, an edit)."""
        return Scene(tuple(fn(o) for o in self.objects))

    def without(self, obj: SceneObject) -> Scene:
        return Scene(tuple(o for o in self.objects if o != obj))

    def with_object(self, obj: SceneObject) -> Scene:
        return Scene(self.objects + (obj,))

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [o.to_dict() for o in self.objects]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        return cls(tuple(SceneObject.from_dict(o) for o in data["objects"]))

    def to_json(self) -> str:
        """Canonical JSON: equal scenes give equal strings (the scene's identity for noise and caches)."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Scene:
        return cls.from_dict(json.loads(text))


def scene_rng(seed: int, index: int = 0, *salt: int) -> np.random.Generator:
    """A generator that depends only on (seed, index, salt): the same in every process and platform."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index) & 0xFFFFFFFF, *(int(s) & 0xFFFFFFFF for s in salt)])


def random_object(rng: np.random.Generator, row: int, col: int, special_rate: float = SPECIAL_RATE) -> SceneObject:
    """Attributes drawn independently: a clock or sign with probability ``special_rate``, else a plain shape."""
    color = COLORS[int(rng.integers(len(COLORS)))]
    if rng.random() < special_rate:
        shape = SPECIAL_SHAPES[int(rng.integers(len(SPECIAL_SHAPES)))]
        size = "large"
    else:
        shape = PLAIN_SHAPES[int(rng.integers(len(PLAIN_SHAPES)))]
        size = SIZES[int(rng.integers(len(SIZES)))]
    hour = int(HOURS[int(rng.integers(len(HOURS)))]) if shape == "clock" else None
    word = SIGN_WORDS[int(rng.integers(len(SIGN_WORDS)))] if shape == "sign" else None
    return SceneObject(color, shape, size, row, col, hour, word)


def sample_scene(
    seed: int | np.random.Generator = 0,
    index: int = 0,
    *,
    min_objects: int = MIN_OBJECTS,
    max_objects: int = MAX_OBJECTS,
    special_rate: float = SPECIAL_RATE,
) -> Scene:
    """A random scene: ``min_objects``..``max_objects`` objects (uniform), in distinct random cells.

    ``seed`` and ``index`` pick the scene (``sample_scene(0, i)`` is scene ``i`` of pool 0), or pass
    a numpy Generator.
    """
    if not 0 <= min_objects <= max_objects <= GRID * GRID:
        raise ValueError(f"need 0 <= min_objects <= max_objects <= {GRID * GRID} (got {min_objects}, {max_objects})")
    rng = seed if isinstance(seed, np.random.Generator) else scene_rng(seed, index)
    n = int(rng.integers(min_objects, max_objects + 1))
    cells = rng.choice(GRID * GRID, size=n, replace=False)
    return Scene(tuple(random_object(rng, int(c) // GRID, int(c) % GRID, special_rate) for c in cells))


def sample_scenes(n: int, seed: int = 0, **kwargs: Any) -> list[Scene]:
    return [sample_scene(seed, i, **kwargs) for i in range(n)]


def swap_colors(scene: Scene, a: str, b: str) -> Scene:
    """The scene with colours ``a`` and ``b`` exchanged."""
    swap = {a: b, b: a}
    return scene.map(lambda o: o.replace(color=swap.get(o.color, o.color)))


def mirror_left_right(scene: Scene) -> Scene:
    """The scene seen in a mirror: left and right columns exchanged."""
    return scene.map(lambda o: o.replace(col=GRID - 1 - o.col))


def flip_top_bottom(scene: Scene) -> Scene:
    return scene.map(lambda o: o.replace(row=GRID - 1 - o.row))


def iter_objects(scenes: Iterable[Scene]) -> Iterable[SceneObject]:
    for scene in scenes:
        yield from scene.objects
