"""Content-addressed caches: model outputs in SQLite, rendered images as PNG files.

An answer is keyed by the model's fingerprint, the hashes of the request's images, the
prompt, the task and the generation settings, so a rerun, a resumed run or a run with a new
target never asks a model what it has already answered.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
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
    """Model outputs by content key. ``path=None`` keeps them in memory for this process only."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path) if self.path is not None else ":memory:")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outputs (key TEXT PRIMARY KEY, model_id TEXT, text TEXT NOT NULL)"
        )
        self.hits = 0
        self.misses = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(keys))
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
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO outputs VALUES (?, ?, ?)", list(items))

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM outputs").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class RenderCache:
    """Rendered images by content key, as PNG files under ``root`` (``None`` disables it)."""

    def __init__(self, root: str | Path | None):
        self.root = Path(root) if root is not None else None
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}.png"

    def get(self, key: str) -> Image.Image | None:
        if self.root is not None and self._path(key).is_file():
            self.hits += 1
            with Image.open(self._path(key)) as image:
                return image.convert("RGB")
        self.misses += 1
        return None

    def put(self, key: str, image: Image.Image) -> None:
        if self.root is None:
            return
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)
