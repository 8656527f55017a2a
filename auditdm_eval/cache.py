"""Content-addressed caches: model outputs in SQLite, rendered images as PNG files, and the pixel
hashes of image files.

An answer is keyed by the model's fingerprint, the hashes of the request's images, the
prompt, the task and the generation settings, so a rerun, a resumed run or a run with a new
target never asks a model what it has already answered. A rerun does not decode an image file
it has decoded before either, nor load a model or a pipeline whose every output is cached.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image

from model_adapters import GenerationRequest

from .records import image_sha256


def content_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def request_image_shas(request: GenerationRequest) -> list[str]:
    cached = request.metadata.get("image_shas")
    return list(cached) if cached is not None else [image_sha256(image) for image in request.images]


def answer_key(fingerprint: str, request: GenerationRequest) -> str:
    """Everything that decides a model's text: weights, pixels, prompt, task, settings (and the seed
    when sampling; a greedy answer is shared by every seed)."""
    return content_key(
        model=fingerprint,
        images=request_image_shas(request),
        prompt=request.prompt,
        task=request.task,
        generation=request.settings.key(),
        seed=request.seed if request.settings.sampling else None,
    )


class AnswerCache:
    """Model outputs by content key. ``path=None`` keeps them in memory for this process only.

    Several processes may open the same file at once (the Ray engine's actors do): the database is
    in WAL mode (readers never wait for the writer), a writer waits up to :attr:`BUSY_SECONDS` for
    another's transaction instead of failing, and every write commits at once. Within a process
    one connection serves every thread, under a lock. It also records each local checkpoint's
    model id and fingerprint (:meth:`known_model`), so a model need not load to be asked."""

    BUSY_SECONDS = 120.0

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._db = _sqlite(
            self.path,
            [
                "CREATE TABLE IF NOT EXISTS outputs (key TEXT PRIMARY KEY, model_id TEXT, text TEXT NOT NULL)",
                "CREATE TABLE IF NOT EXISTS models (identity TEXT PRIMARY KEY, model_id TEXT NOT NULL, fingerprint TEXT NOT NULL)",
            ],
            self.BUSY_SECONDS,
        )
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), 500):
                chunk = unique[start : start + 500]
                marks = ",".join("?" * len(chunk))
                for key, text in self._db.execute(f"SELECT key, text FROM outputs WHERE key IN ({marks})", chunk):
                    found[key] = text
        self.hits += sum(1 for key in keys if key in found)
        self.misses += sum(1 for key in keys if key not in found)
        return found

    def put_many(self, items: Iterable[tuple[str, str, str]]) -> None:
        """Store (key, model_id, text) rows and commit, so a killed run keeps them."""
        rows = list(items)
        with self._lock, self._db:
            self._db.executemany("INSERT OR REPLACE INTO outputs VALUES (?, ?, ?)", rows)

    def known_model(self, identity: str) -> tuple[str, str] | None:
        """The (model id, fingerprint) an earlier load of the checkpoint ``identity`` gave, if one was recorded."""
        with self._lock:
            row = self._db.execute("SELECT model_id, fingerprint FROM models WHERE identity = ?", (identity,)).fetchone()
        return (row[0], row[1]) if row else None

    def remember_model(self, identity: str, model_id: str, fingerprint: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?)", (identity, model_id, fingerprint))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _sqlite(path: Path | None, schema: Sequence[str], busy_seconds: float) -> sqlite3.Connection:
    """A connection several processes may share the file of: WAL (readers never wait for the writer),
    a busy timeout (a writer waits for another's transaction instead of failing), commits durable
    against a killed process. Switching to WAL needs a moment alone with the file: when processes open
    it together the switch can report "locked" without waiting for the timeout, so it is retried."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path) if path is not None else ":memory:", timeout=busy_seconds, check_same_thread=False)
    deadline = time.monotonic() + busy_seconds
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # in WAL mode: a killed process loses no commit
            for statement in schema:
                db.execute(statement)
            db.commit()
            return db
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@lru_cache(maxsize=None)
def _decoder_identity() -> str:
    """What decides the pixels an image file decodes to: Pillow and its codec libraries."""
    import PIL
    from PIL import features

    return content_key(pillow=PIL.__version__, codecs={name: features.version(name) for name in ("zlib", "jpg", "webp")})


class ImageHashMemo:
    """The pixel hash (:func:`~auditdm_eval.records.image_sha256`) of image files that were decoded
    before, by the file's bytes and the decoder: a rerun knows an image's hash, and so its probe ids
    and cache keys, without decoding it; the pixels are decoded only if a model or renderer needs them.
    Only files stored as they are (RGB, one frame, nothing a viewer would change) are recorded. It
    lives in the answer cache's SQLite file (its own table), or any other."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._db = _sqlite(
            self.path,
            ["CREATE TABLE IF NOT EXISTS image_hashes (file TEXT PRIMARY KEY, image_sha TEXT NOT NULL, width INTEGER, height INTEGER)"],
            AnswerCache.BUSY_SECONDS,
        )

    @staticmethod
    def _key(data: bytes) -> str:
        return content_key(file=hashlib.sha256(data).hexdigest(), decoder=_decoder_identity())

    def get(self, data: bytes, size: tuple[int, int]) -> str | None:
        """The pixel hash of the file ``data`` decoding to an image of ``size``, if recorded."""
        with self._lock:
            row = self._db.execute("SELECT image_sha, width, height FROM image_hashes WHERE file = ?", (self._key(data),)).fetchone()
        return row[0] if row is not None and (row[1], row[2]) == tuple(size) else None

    def put(self, data: bytes, image_sha: str, size: tuple[int, int]) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO image_hashes VALUES (?, ?, ?, ?)", (self._key(data), image_sha, *size))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class RenderCache:
    """Rendered images by content key, as PNG files under ``root`` (``None`` disables it).

    The PNG bytes of an image this cache wrote or read are kept beside it while the image lives
    (:meth:`encoded_png`), so storing the image in a shard does not encode it again."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.misses = 0
        self._encoded: dict[int, tuple[weakref.ref, bytes]] = {}

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.png"

    def get(self, key: str) -> Image.Image | None:
        if self.root is not None:
            try:
                data = self._path(key).read_bytes()
            except FileNotFoundError:
                data = None
            if data is not None:
                self.hits += 1
                with Image.open(io.BytesIO(data)) as opened:
                    image = opened.convert("RGB")
                if opened.mode == "RGB":  # the file holds exactly these pixels
                    self._remember(image, data)
                return image
        self.misses += 1
        return None

    def put(self, key: str, image: Image.Image) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        data = buffer.getvalue()
        # a name of this writer's own: two processes rendering the same key never write into one file
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a reader sees no file or a whole one
        if image.mode in PNG_MODES and image.format in (None, "PNG"):  # what a shard would encode for it
            self._remember(image, data)

    def encoded_png(self, image: Image.Image) -> bytes | None:
        """The PNG file of ``image`` as this cache wrote or read it (None if it did neither)."""
        entry = self._encoded.get(id(image))
        return entry[1] if entry is not None and entry[0]() is image else None

    def _remember(self, image: Image.Image, data: bytes) -> None:
        key = id(image)
        self._encoded[key] = (weakref.ref(image, lambda _, key=key: self._encoded.pop(key, None)), data)

    # -- what a renderer is, without loading it --------------------------------------------------
    def known_renderer(self, identity: str) -> tuple[str, str] | None:
        """The (renderer id, fingerprint) an earlier load of the pipeline ``identity`` gave, if recorded."""
        if self.root is None:
            return None
        try:
            known = json.loads((self.root / "renderers" / f"{identity}.json").read_text())
            return known["renderer_id"], known["fingerprint"]
        except (OSError, ValueError, KeyError):
            return None

    def remember_renderer(self, identity: str, renderer_id: str, fingerprint: str) -> None:
        if self.root is None:
            return
        path = self.root / "renderers" / f"{identity}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        tmp.write_text(json.dumps({"renderer_id": renderer_id, "fingerprint": fingerprint}))
        os.replace(tmp, path)


PNG_MODES = ("1", "L", "LA", "RGB", "RGBA")  # the modes a shard stores as PNG (others as TIFF)
