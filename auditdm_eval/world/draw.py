"""Drawing a scene: flat, high-contrast shapes on a plain white background, pixel-exact and deterministic.

Every object is drawn from a *label map* of its grid cell (0 background, 1 the object's colour,
2 black ink: a clock's hand and ticks, a sign's letters and post). Label maps are computed with
integer arithmetic (and a fixed table of hand directions), so the same scene gives the same pixels
in every process; the decoder matches cells against these same label maps.

The image is split into a 3x3 grid with integer cell bounds ``(i * side) // 3``; any size from
:data:`MIN_SIZE` up works, and sizes that are a multiple of 3 give square cells.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from .scene import COLORS, GRID, Scene, SceneObject

MIN_SIZE = 48
DEFAULT_SIZE = 96
BACKGROUND = (255, 255, 255)
INK = (0, 0, 0)
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 80, 220),
    "yellow": (245, 205, 20),
    "purple": (140, 50, 180),
    "orange": (250, 130, 20),
}
assert tuple(PALETTE) == COLORS

# a 3x5 bitmap font, upper case, for the sign words
FONT: dict[str, tuple[str, ...]] = {
    "A": (".#.", "#.#", "###", "#.#", "#.#"),
    "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": ("###", "#..", "#..", "#..", "###"),
    "E": ("###", "#..", "###", "#..", "###"),
    "F": ("###", "#..", "###", "#..", "#.."),
    "I": ("###", ".#.", ".#.", ".#.", "###"),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"),
    "L": ("#..", "#..", "#..", "#..", "###"),
    "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": ("###", "#.#", "#.#", "#.#", "###"),
    "P": ("###", "#.#", "###", "#..", "#.."),
    "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": ("###", "#..", "###", "..#", "###"),
    "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"),
    "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
}
GLYPH_W, GLYPH_H = 3, 5
MAX_WORD_LETTERS = 4

# (sin, cos) of hour * 30 degrees, to 6 decimals: the same numbers everywhere
_HAND = {
    h: (round(float(np.sin(np.radians(h * 30))), 6), round(float(np.cos(np.radians(h * 30))), 6)) for h in range(1, 13)
}


def cell_bounds(side: int) -> list[tuple[int, int]]:
    """[start, stop) of each grid row/column along an image side of ``side`` pixels."""
    return [((i * side) // GRID, ((i + 1) * side) // GRID) for i in range(GRID)]


def _extent(m: int, size: str) -> int:
    """Side of an object's bounding box in a cell whose short side is ``m`` (same parity as m: centred exactly)."""
    margin = round(0.08 * m) if size == "large" else round(0.27 * m)
    return max(3, m - 2 * margin)


def _circle(h: int, w: int, x0: int, y0: int, side: int) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    dx = 2 * xs + 1 - (2 * x0 + side)
    dy = 2 * ys + 1 - (2 * y0 + side)
    return dx * dx + dy * dy <= side * side


def _square(h: int, w: int, x0: int, y0: int, side: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[y0 : y0 + side, x0 : x0 + side] = True
    return mask


def _triangle(h: int, w: int, x0: int, y0: int, side: int) -> np.ndarray:
    """Apex at the top centre, base along the bottom of the box."""
    ys, xs = np.mgrid[0:h, 0:w]
    t = 2 * ys + 1 - 2 * y0  # twice the height below the apex, at pixel centres
    return (t >= 0) & (ys < y0 + side) & (np.abs(4 * xs + 2 - 2 * (2 * x0 + side)) <= t)


def _segment(h: int, w: int, ax: float, ay: float, bx: float, by: float, half_width: float) -> np.ndarray:
    ys, xs = np.mgrid[0:h, 0:w]
    px, py = xs + 0.5, ys + 0.5
    vx, vy = bx - ax, by - ay
    length2 = vx * vx + vy * vy
    t = np.clip(((px - ax) * vx + (py - ay) * vy) / length2, 0.0, 1.0)
    dx, dy = px - (ax + t * vx), py - (ay + t * vy)
    return dx * dx + dy * dy <= half_width * half_width + 1e-9


def _ink_width(m: int) -> int:
    return max(1, round(m / 24))


def _clock(h: int, w: int, x0: int, y0: int, side: int, hour: int) -> np.ndarray:
    labels = _circle(h, w, x0, y0, side).astype(np.uint8)
    cx, cy, radius = x0 + side / 2, y0 + side / 2, side / 2
    half = _ink_width(min(h, w)) / 2
    ink = np.zeros((h, w), bool)
    for tick in (12, 3, 6, 9):
        s, c = _HAND[tick]
        ink |= _segment(h, w, cx + s * 0.78 * radius, cy - c * 0.78 * radius, cx + s * 0.92 * radius, cy - c * 0.92 * radius, half)
    s, c = _HAND[hour]
    ink |= _segment(h, w, cx, cy, cx + s * 0.6 * radius, cy - c * 0.6 * radius, half)
    labels[ink] = 2
    return labels


def _sign(h: int, w: int, x0: int, y0: int, side: int, word: str) -> np.ndarray:
    labels = np.zeros((h, w), np.uint8)
    scale = max(1, (side - 2) // (MAX_WORD_LETTERS * (GLYPH_W + 1) - 1))
    board_h = max(GLYPH_H * scale + 2, round(0.55 * side))
    board_top = y0 + round(0.08 * side)
    labels[board_top : board_top + board_h, x0 : x0 + side] = 1
    post = _ink_width(min(h, w))
    post_x = x0 + (side - post) // 2
    labels[board_top + board_h : y0 + side, post_x : post_x + post] = 2
    letters = word.upper()
    text_w = (len(letters) * (GLYPH_W + 1) - 1) * scale
    tx = x0 + (side - text_w) // 2
    ty = board_top + (board_h - GLYPH_H * scale) // 2
    for k, letter in enumerate(letters):
        glyph = FONT[letter]
        for gy, line in enumerate(glyph):
            for gx, bit in enumerate(line):
                if bit == "#":
                    x = tx + (k * (GLYPH_W + 1) + gx) * scale
                    y = ty + gy * scale
                    labels[max(y, 0) : y + scale, max(x, 0) : x + scale] = 2
    return labels


@lru_cache(maxsize=4096)
def object_labels(shape: str, size: str, hour: int | None, word: str | None, h: int, w: int) -> np.ndarray:
    """The label map (h, w) of one object in a cell of h x w pixels (read-only, cached)."""
    side = _extent(min(h, w), size)
    x0, y0 = (w - side) // 2, (h - side) // 2
    if shape == "circle":
        labels = _circle(h, w, x0, y0, side).astype(np.uint8)
    elif shape == "square":
        labels = _square(h, w, x0, y0, side).astype(np.uint8)
    elif shape == "triangle":
        labels = _triangle(h, w, x0, y0, side).astype(np.uint8)
    elif shape == "clock":
        assert hour is not None
        labels = _clock(h, w, x0, y0, side, hour)
    elif shape == "sign":
        assert word is not None
        labels = _sign(h, w, x0, y0, side, word)
    else:
        raise ValueError(f"cannot draw shape {shape!r}")
    labels.setflags(write=False)
    return labels


def _size_pair(size: int | tuple[int, int]) -> tuple[int, int]:
    width, height = (size, size) if isinstance(size, int) else size
    if min(width, height) < MIN_SIZE:
        raise ValueError(f"a world image needs at least {MIN_SIZE} px on a side (got {width}x{height})")
    return int(width), int(height)


def draw_array(scene: Scene, size: int | tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    width, height = _size_pair(size)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    rows, cols = cell_bounds(height), cell_bounds(width)
    for obj in scene.objects:
        (top, bottom), (left, right) = rows[obj.row], cols[obj.col]
        labels = object_labels(obj.shape, obj.size, obj.hour, obj.word, bottom - top, right - left)
        region = image[top:bottom, left:right]
        region[labels == 1] = PALETTE[obj.color]
        region[labels == 2] = INK
    return image


def draw(scene: Scene, size: int | tuple[int, int] = DEFAULT_SIZE) -> Image.Image:
    """The scene as an RGB image of ``size`` x ``size`` pixels (or ``(width, height)``), deterministic."""
    return Image.fromarray(draw_array(scene, size), "RGB")


def draw_object(obj: SceneObject, size: int = DEFAULT_SIZE) -> Image.Image:
    return draw(Scene((obj,)), size)
