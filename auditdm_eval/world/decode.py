"""Reading a scene back from pixels: how the world's models "see".

Each pixel is classified as background, ink or one of the palette colours (nearest reference
colour); each grid cell's label map is then matched against the label maps the drawing code makes
for every (shape, size, hour, word) at that cell size. A drawn image matches one template exactly
(a dictionary lookup); a slightly altered one (lossy compression) is matched to the nearest
template within a tolerance. An image that is not a world scene (pixels far from every reference
colour, cells no template explains, mixed colours in one object) decodes to ``None``.

Nothing is shared with the process that drew the image: the templates are recomputed from the
drawing code on first use per cell size.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image

from .draw import BACKGROUND, INK, MIN_SIZE, PALETTE, cell_bounds, object_labels
from .scene import COLORS, GRID, HOURS, PLAIN_SHAPES, SIGN_WORDS, SIZES, Scene, SceneObject

_REFERENCES = np.array([BACKGROUND, INK, *PALETTE.values()], dtype=np.int32)  # class 0 bg, 1 ink, 2.. colours
FAR = 90**2  # squared RGB distance beyond which a pixel is no world colour
MAX_FAR_SHARE = 0.01  # share of such pixels an image may have and still be read
MAX_MISMATCH = 0.04  # share of a cell's pixels that may differ from the nearest template
MIN_COLOR_SHARE = 0.9  # share of an object's coloured pixels that must be its one colour

Params = tuple[str, str, int | None, str | None]  # shape, size, hour, word


def _all_params() -> list[Params]:
    params: list[Params] = [(shape, size, None, None) for shape in PLAIN_SHAPES for size in SIZES]
    params += [("clock", "large", hour, None) for hour in HOURS]
    params += [("sign", "large", None, word) for word in SIGN_WORDS]
    return params


@lru_cache(maxsize=64)
def _templates(h: int, w: int) -> tuple[dict[bytes, Params], list[Params], np.ndarray]:
    params = _all_params()
    stack = np.stack([object_labels(*p, h, w) for p in params])
    exact = {stack[i].tobytes(): p for i, p in enumerate(params)}
    if len(exact) != len(params):
        raise RuntimeError(f"two objects draw alike in a {w}x{h} cell: the world cannot be decoded at this size")
    return exact, params, stack


def classify_pixels(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(class per pixel: 0 background, 1 ink, 2+k palette colour k; mask of pixels far from every class)."""
    pixels = array.reshape(-1, 3).astype(np.int32)
    # squared distances to the references without a (N, K, 3) temporary
    d = (pixels * pixels).sum(1)[:, None] - 2 * pixels @ _REFERENCES.T + (_REFERENCES * _REFERENCES).sum(1)[None, :]
    classes = d.argmin(1)
    far = d[np.arange(len(d)), classes] > FAR
    return classes.reshape(array.shape[:2]).astype(np.uint8), far.reshape(array.shape[:2])


def decode_array(array: np.ndarray) -> Scene | None:
    if array.ndim != 3 or array.shape[2] != 3:
        return None
    height, width = array.shape[:2]
    if min(height, width) < MIN_SIZE:
        return None
    classes, far = classify_pixels(array)
    if far.mean() > MAX_FAR_SHARE:
        return None
    labels_all = np.where(classes == 0, 0, np.where(classes == 1, 2, 1)).astype(np.uint8)
    objects = []
    for row, (top, bottom) in enumerate(cell_bounds(height)):
        for col, (left, right) in enumerate(cell_bounds(width)):
            labels = labels_all[top:bottom, left:right]
            if not labels.any():
                continue
            found = _match(labels)
            if found is None:
                return None
            colours = classes[top:bottom, left:right][labels == 1]
            if colours.size == 0:
                return None
            votes = np.bincount(colours.astype(np.int64) - 2, minlength=len(COLORS))
            best = int(votes.argmax())
            if votes[best] < MIN_COLOR_SHARE * colours.size:
                return None
            shape, size, hour, word = found
            objects.append(SceneObject(COLORS[best], shape, size, row, col, hour, word))
    return Scene(tuple(objects))


def _match(labels: np.ndarray) -> Params | None:
    h, w = labels.shape
    exact, params, stack = _templates(h, w)
    hit = exact.get(np.ascontiguousarray(labels).tobytes())
    if hit is not None:
        return hit
    mismatches = (stack != labels[None]).reshape(len(params), -1).sum(1)
    best = int(mismatches.argmin())
    if mismatches[best] > MAX_MISMATCH * h * w:
        return None
    return params[best]


def decode(image: Image.Image) -> Scene | None:
    """The scene an image of the world shows, read from its pixels; ``None`` if it is no world scene."""
    if not isinstance(image, Image.Image):
        return None
    return decode_array(np.asarray(image.convert("RGB")))


def check_decodable(side: int) -> None:
    """Raise if two objects would draw alike in the cells of a ``side`` x ``side`` image."""
    for start, stop in cell_bounds(side):
        _templates(stop - start, stop - start)


__all__ = ["GRID", "check_decodable", "classify_pixels", "decode", "decode_array"]
