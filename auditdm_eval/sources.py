"""The image pool the auditor looks at: a folder, a Hugging Face dataset, or bundled photos.

Images that cannot be used (unreadable, too small) are reported as :class:`SourceIssue` with
the fix, and the run goes on without them.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .records import SourceImage

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "horse", "clock", "page", "coins", "camera", "hubble_deep_field")
DEFAULT_MIN_SIDE = 28


@dataclass
class SourceIssue:
    source_id: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.source_id}: {self.message} -> {self.fix}"


@dataclass
class SourceOptions:
    split: str = "train"
    image_column: str | None = None
    question_column: str | None = None
    answer_column: str | None = None
    id_column: str | None = None
    limit: int | None = None
    min_side: int = DEFAULT_MIN_SIDE


SourceItem = SourceImage | SourceIssue


def _check(source_id: str, image: Image.Image, min_side: int, encoded: bytes | None = None) -> SourceItem:
    if min(image.size) < min_side:
        return SourceIssue(
            source_id,
            f"image is {image.width}x{image.height} px, smaller than {min_side} px on a side",
            f"drop it or upscale it, or lower --min-image-side (now {min_side})",
        )
    return SourceImage(source_id, image.convert("RGB"), encoded=encoded)


def _decode(source_id: str, data: bytes, min_side: int) -> SourceItem:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return _check(source_id, opened, min_side, encoded=data)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        return SourceIssue(source_id, f"cannot read image ({error})", "replace or remove the file")


def from_folder(folder: Path, options: SourceOptions) -> Iterator[SourceItem]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    for path in files[: options.limit]:
        yield _decode(path.relative_to(folder).as_posix(), path.read_bytes(), options.min_side)


def from_skimage(names: list[str], options: SourceOptions) -> Iterator[SourceItem]:
    """Real photos that ship inside scikit-image: usable offline."""
    import skimage.data

    for name in names[: options.limit]:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            yield SourceIssue(f"skimage:{name}", "no such scikit-image sample", f"use one of {', '.join(SKIMAGE_PHOTOS)}")
            continue
        yield _check(f"skimage:{name}", Image.fromarray(loader()).convert("RGB"), options.min_side)


def _load_hf_dataset(spec: str, split: str) -> Any:
    import datasets

    path = Path(spec)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        loaded = datasets.load_from_disk(str(path))
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    return datasets.load_dataset(spec, split=split)


def _pick_image_column(dataset: Any, wanted: str | None) -> str:
    import datasets

    if wanted:
        if wanted not in dataset.column_names:
            raise ValueError(f"image column {wanted!r} not in dataset columns {dataset.column_names}")
        return wanted
    for name, feature in dataset.features.items():
        if isinstance(feature, datasets.Image):
            return name
    raise ValueError(f"no Image column in dataset columns {dataset.column_names}: pass --image-column")


def from_hf_dataset(spec: str, options: SourceOptions) -> Iterator[SourceItem]:
    import datasets

    dataset = _load_hf_dataset(spec, options.split)
    image_column = _pick_image_column(dataset, options.image_column)
    for column in (options.question_column, options.answer_column, options.id_column):
        if column and column not in dataset.column_names:
            raise ValueError(f"column {column!r} not in dataset columns {dataset.column_names}")
    count = len(dataset) if options.limit is None else min(options.limit, len(dataset))
    dataset = dataset.cast_column(image_column, datasets.Image(decode=False))  # keep the stored bytes
    for index in range(count):
        row = dataset[index]
        source_id = str(row[options.id_column]) if options.id_column else f"{options.split}:{index}"
        cell = row[image_column] or {}
        data = cell.get("bytes") or (Path(cell["path"]).read_bytes() if cell.get("path") else None)
        if data is None:
            yield SourceIssue(source_id, f"column {image_column!r} holds no image", "fill it or drop the row")
            continue
        item = _decode(source_id, data, options.min_side)
        if isinstance(item, SourceImage):
            item.question = row[options.question_column] if options.question_column else None
            answer = row[options.answer_column] if options.answer_column else None
            item.answer = answer if answer is None or isinstance(answer, str) else str(answer)
        yield item


SOURCE_KINDS: dict[str, Callable[[str, SourceOptions], Iterator[SourceItem]]] = {
    "skimage": lambda rest, options: from_skimage([n for n in rest.split(",") if n] or list(SKIMAGE_PHOTOS), options),
    "hf": from_hf_dataset,
    "dir": lambda rest, options: from_folder(Path(rest), options),
}


def iter_sources(spec: str, options: SourceOptions | None = None) -> Iterator[SourceItem]:
    """``skimage:[names]``, ``hf:<hub id or path>``, ``dir:<folder>``, or a bare folder / dataset path."""
    options = options or SourceOptions()
    kind, sep, rest = spec.partition(":")
    if sep and kind in SOURCE_KINDS:
        return SOURCE_KINDS[kind](rest, options)
    path = Path(spec)
    if path.is_dir() and not any((path / marker).exists() for marker in ("dataset_info.json", "dataset_dict.json")):
        return from_folder(path, options)
    if path.exists() or "/" in spec:
        return from_hf_dataset(spec, options)
    raise ValueError(
        f"cannot tell what images {spec!r} names: pass a folder of images, hf:<hub id or local dataset>, "
        f"or skimage:<names> (bundled photos: {', '.join(SKIMAGE_PHOTOS)})"
    )
