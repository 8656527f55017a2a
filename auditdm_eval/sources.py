"""The image pool the auditor looks at: a folder, a Hugging Face dataset, or bundled photos.

Images that cannot be used (empty, not an image, truncated, over the pixel limit, too small, or
failing to decode for any other reason) are reported as :class:`SourceIssue` with a stable message
and the fix, and the run goes on without them. Every usable image is turned into the 8-bit RGB
image the models see (:func:`model_rgb`); the file's own bytes travel with it only when they decode
to exactly that image (:func:`keeps_file_bytes`), so the stored dataset shows what the models saw.

With a hash memo (:attr:`SourceOptions.hash_memo`, the answer cache's file), a PNG or JPEG file
decoded by an earlier run is not decoded again to be known: its pixel hash comes from the memo, and
its pixels are decoded only when a model or a renderer first needs them (a warm rerun never does).
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from .records import SourceImage
from .registry import Registry

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "horse", "clock", "page", "coins", "camera", "hubble_deep_field")
DEFAULT_MIN_SIDE = 28
DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels: 300 MB decoded as RGB; PIL's own default is ~89 MP
UNREADABLE = "cannot read image"
_MAGIC = {  # how a file of each format starts: a damaged file of a known format is "truncated", not "not an image"
    b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"GIF87a": "GIF", b"GIF89a": "GIF", b"BM": "BMP",
    b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PIL_LIMIT = threading.Lock()  # Image.MAX_IMAGE_PIXELS is process-global: one decode changes it at a time


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
    max_pixels: int | None = DEFAULT_MAX_PIXELS  # larger images are skipped as issues; None: no limit
    hash_memo: str | None = None  # pixel hashes of files decoded before (an SQLite file); None: decode every file
    memo: Any = field(default=None, compare=False, repr=False)  # the open ImageHashMemo, set by iter_sources


SourceItem = SourceImage | SourceIssue


def stable_message(text: str) -> str:
    """``text`` without Python object addresses, so the same problem reads the same on every run."""
    return _ADDRESS.sub("", text)


# -- what the models see ----------------------------------------------------------------------
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


def model_rgb(image: Image.Image) -> Image.Image:
    """The 8-bit RGB image the models are shown for ``image`` (of any mode).

    16-bit and other high-depth greyscale is scaled to 8 bits (not clipped); transparency is
    composited on white; CMYK, palette, greyscale and the other modes are converted; of an
    animated or multi-page file, the frame already loaded (the first) is used.
    """
    if image.mode.startswith("I") or image.mode == "F":
        image = _to_8bit(image)
    if image.mode in _ALPHA_MODES or "transparency" in image.info:
        rgba = image.convert("RGBA")
        rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    else:
        rgb = image.convert("RGB")
    rgb.info = {}  # no ICC profile, EXIF or transparency carried into the stored PNG
    return rgb


def _to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit (I;16*), 32-bit integer (I) or float (F) greyscale image as 8-bit L (or LA)."""
    values = np.asarray(image).astype(np.float64)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if image.mode.startswith("I;16") or (image.mode == "I" and lo >= 0 and 255 < hi <= 65535):
        scaled = values / 257.0  # 65535 -> 255
    elif image.mode == "F" and lo >= 0 and hi <= 1:
        scaled = values * 255.0
    elif lo >= 0 and hi <= 255:
        scaled = values
    else:  # values outside any fixed range: stretch min..max to 0..255
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    grey = Image.fromarray(np.clip(np.rint(np.nan_to_num(scaled)), 0, 255).astype(np.uint8), "L")
    transparent = image.info.get("transparency")
    if isinstance(transparent, int):  # one grey level marked transparent (PNG tRNS)
        alpha = Image.fromarray(np.where(np.asarray(image) == transparent, 0, 255).astype(np.uint8), "L")
        grey = Image.merge("LA", (grey, alpha))
    return grey


def keeps_file_bytes(opened: Image.Image) -> bool:
    """Whether the file ``opened`` was decoded from shows exactly what :func:`model_rgb` gives: a
    single-frame RGB (or greyscale) image without transparency and without an EXIF rotation a
    viewer would apply. Only then is the file stored as it is; otherwise the converted image is."""
    if opened.mode not in ("RGB", "L") or "transparency" in opened.info:
        return False
    if getattr(opened, "n_frames", 1) != 1:
        return False
    return opened.getexif().get(0x0112, 1) == 1  # Orientation


# -- decoding, with every failure named -------------------------------------------------------
def _check(source_id: str, image: Image.Image, options: SourceOptions) -> SourceItem:
    return _size_issue(source_id, image.size, options) or SourceImage(source_id, model_rgb(image))


def _size_issue(source_id: str, size: tuple[int, int], options: SourceOptions) -> SourceIssue | None:
    width, height = size
    if options.max_pixels and width * height > options.max_pixels:
        return _too_large(source_id, size, options.max_pixels)
    if min(size) < options.min_side:
        return SourceIssue(
            source_id,
            f"image is {width}x{height} px, smaller than {options.min_side} px on a side",
            f"drop it or upscale it, or lower --min-image-side (now {options.min_side})",
        )
    return None


_MEMO_FORMATS = ("PNG", "JPEG")  # single-image formats whose decoding starts only when pixels are used


def _memo_candidate(opened: Image.Image) -> bool:
    """Whether ``opened`` (header read) may be known by its file's bytes: RGB in a single-image format.
    The rest (one frame, no transparency, no EXIF rotation) was checked when its hash was recorded."""
    return opened.format in _MEMO_FORMATS and opened.mode == "RGB"


def _known_source(source_id: str, data: bytes, image_sha: str) -> SourceImage:
    """The source of a file decoded before: its pixels decode when first used (as any opened file's do)."""
    image = Image.open(io.BytesIO(data))
    image.info, image.format = {}, None  # as model_rgb's copy: no metadata, no format to re-encode in
    source = SourceImage(source_id, image, encoded=data)
    source.__dict__["image_sha"] = image_sha  # the value of the cached property: known, not computed
    return source


def _too_large(source_id: str, size: tuple[int, int], limit: int) -> SourceIssue:
    width, height = size
    return SourceIssue(
        source_id,
        f"image is {width}x{height} px ({width * height / 1e6:.1f} megapixels), over the limit of {limit / 1e6:.1f} megapixels",
        f"downscale it, or raise the limit with --max-image-pixels (now {limit})",
    )


def _decode(source_id: str, data: bytes, options: SourceOptions) -> SourceItem:
    """``data`` as a usable :class:`SourceImage`, or a :class:`SourceIssue` naming why not (never raises)."""
    if not data:
        return SourceIssue(source_id, f"{UNREADABLE}: empty file (0 bytes)", "replace or remove the file")
    limit = options.max_pixels
    try:
        with _PIL_LIMIT, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            saved = Image.MAX_IMAGE_PIXELS
            try:
                Image.MAX_IMAGE_PIXELS = None  # reading the header allocates nothing: check its size ourselves
                with Image.open(io.BytesIO(data)) as opened:
                    if limit and opened.width * opened.height > limit:
                        return _too_large(source_id, opened.size, limit)
                    memo = options.memo if _memo_candidate(opened) else None
                    known = memo.get(data, opened.size) if memo is not None else None
                    if known is not None:
                        return _size_issue(source_id, opened.size, options) or _known_source(source_id, data, known)
                    Image.MAX_IMAGE_PIXELS = limit  # frames or tiles larger than the header said still stop here
                    opened.load()
                    item = _check(source_id, opened, options)
                    if isinstance(item, SourceImage) and keeps_file_bytes(opened):
                        item.encoded = data
                        if memo is not None:
                            memo.put(data, item.image_sha, opened.size)
                    return item
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except Exception as error:  # noqa: BLE001 - whatever a decoder raises, the run goes on without this image
        return _unreadable(source_id, data, error, limit)


def _unreadable(source_id: str, data: bytes, error: Exception, limit: int | None) -> SourceIssue:
    fmt = next((name for magic, name in _MAGIC.items() if data.startswith(magic)), None)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        fmt = "WebP"
    text = stable_message(str(error))
    if isinstance(error, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return SourceIssue(
            source_id,
            f"{UNREADABLE}: it decodes to more pixels than the limit of {(limit or 0) / 1e6:.1f} megapixels",
            f"downscale it, or raise the limit with --max-image-pixels (now {limit})",
        )
    if isinstance(error, UnidentifiedImageError):
        if fmt:
            return SourceIssue(source_id, f"{UNREADABLE}: truncated or damaged {fmt} file", "re-export or re-download it, or remove it")
        return SourceIssue(source_id, f"{UNREADABLE}: not an image (no known image format)", "replace or remove the file")
    if "truncated" in text.lower():
        return SourceIssue(
            source_id, f"{UNREADABLE}: truncated (the {fmt or 'image'} file ends before its image data does)",
            "re-export or re-download it, or remove it",
        )
    what = f"damaged {fmt} file" if fmt else "cannot decode it"
    return SourceIssue(source_id, f"{UNREADABLE}: {what} ({type(error).__name__}: {text})", "replace or remove the file")


def _read(source_id: str, path: Path, options: SourceOptions) -> SourceItem:
    try:
        data = path.read_bytes()
    except OSError as error:
        return SourceIssue(source_id, f"cannot read file: {error.strerror or type(error).__name__}", "check the file's permissions, or remove it")
    return _decode(source_id, data, options)


def from_folder(folder: Path, options: SourceOptions) -> Iterator[SourceItem]:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images found in {folder} (looked for {', '.join(sorted(IMAGE_SUFFIXES))})")
    for path in files[: options.limit]:
        yield _read(path.relative_to(folder).as_posix(), path, options)


def from_skimage(names: list[str], options: SourceOptions) -> Iterator[SourceItem]:
    """Real photos that ship inside scikit-image: usable offline."""
    import skimage.data

    for name in names[: options.limit]:
        loader = getattr(skimage.data, name, None)
        if loader is None:
            yield SourceIssue(f"skimage:{name}", "no such scikit-image sample", f"use one of {', '.join(SKIMAGE_PHOTOS)}")
            continue
        try:
            image = Image.fromarray(loader())
        except Exception as error:  # noqa: BLE001 - e.g. a sample that needs a download
            yield SourceIssue(f"skimage:{name}", f"cannot load it ({type(error).__name__}: {stable_message(str(error))})", "pick another sample")
            continue
        yield _check(f"skimage:{name}", image, options)


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
        if cell.get("bytes") is not None:
            item = _decode(source_id, cell["bytes"], options)
        elif cell.get("path"):
            item = _read(source_id, Path(cell["path"]), options)
        else:
            yield SourceIssue(source_id, f"column {image_column!r} holds no image", "fill it or drop the row")
            continue
        if isinstance(item, SourceImage):
            item.question = row[options.question_column] if options.question_column else None
            answer = row[options.answer_column] if options.answer_column else None
            item.answer = answer if answer is None or isinstance(answer, str) else str(answer)
        yield item


SOURCES: Registry[Iterator[SourceItem]] = Registry("image source", "auditdm.sources")
"""Image pools by the kind before the colon of ``--images <kind>:<rest>``; a factory takes (rest, options)."""
SOURCES.register("skimage", lambda rest, options: from_skimage([n for n in rest.split(",") if n] or list(SKIMAGE_PHOTOS), options))
SOURCES.register("hf", lambda rest, options: from_hf_dataset(rest, options))
SOURCES.register("dir", lambda rest, options: from_folder(Path(rest), options))


def iter_sources(spec: str, options: SourceOptions | None = None) -> Iterator[SourceItem]:
    """``skimage:[names]``, ``hf:<hub id or path>``, ``dir:<folder>``, or a bare folder / dataset path."""
    options = options or SourceOptions()
    if options.hash_memo and options.memo is None:
        from .cache import ImageHashMemo

        options = replace(options, memo=ImageHashMemo(options.hash_memo))
    kind, sep, rest = spec.partition(":")
    if sep and kind in SOURCES:
        return SOURCES.build(kind, rest=rest, options=options)
    path = Path(spec)
    if path.is_dir() and not any((path / marker).exists() for marker in ("dataset_info.json", "dataset_dict.json")):
        return from_folder(path, options)
    if path.exists() or "/" in spec:
        return from_hf_dataset(spec, options)
    raise ValueError(
        f"cannot tell what images {spec!r} names: pass a folder of images, hf:<hub id or local dataset>, "
        f"or skimage:<names> (bundled photos: {', '.join(SKIMAGE_PHOTOS)})"
    )
