"""Fabricated benchmark items, placed where the harnesses look for their data offline."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import datasets


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().replace("-_", "-")


def place_hub_dataset(cache_dir: Path, repo_id: str, splits: dict[str, datasets.Dataset], config: str = "default") -> Path:
    """Prepare ``splits`` in the ``datasets`` cache as if ``load_dataset(repo_id)`` had run once
    online: offline, ``load_dataset(repo_id, config)`` then finds it there."""
    from datasets.packaged_modules.parquet.parquet import Parquet

    namespace, name = repo_id.split("/")
    snake = datasets.naming.camelcase_to_snakecase(name)
    staging = cache_dir / "_staging" / snake
    staging.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, dataset in splits.items():
        dataset.to_parquet(str(staging / f"{split}.parquet"))
        files[split] = [str(staging / f"{split}.parquet")]
    builder_name = f"{namespace}___{snake}"
    builder = Parquet(
        cache_dir=str(cache_dir),
        dataset_name=builder_name,
        data_files=datasets.data_files.DataFilesDict.from_patterns(files),
        config_name=config,
        hash="fabricated",
    )
    builder.download_and_prepare()
    root = cache_dir / builder_name
    prepared = next(p for p in root.iterdir() if p.name.startswith(config))
    final = root / config
    if prepared != final:
        if final.exists():
            shutil.rmtree(final)
        prepared.rename(final)  # the cache module looks the config up by its exact name
    for arrow in final.rglob(f"{builder_name}-*.arrow"):
        arrow.rename(arrow.with_name(arrow.name.replace(builder_name, snake, 1)))
    shutil.rmtree(cache_dir / "_staging", ignore_errors=True)
    return final


def place_lmudata_tsv(root: Path, name: str, rows: list[dict]) -> Path:
    """Write a VLMEvalKit TSV (images as base64 PNG) where VLMEvalKit looks: $LMUData/<name>.tsv."""
    import base64
    import io

    import pandas as pd

    records = []
    for row in rows:
        record = dict(row)
        buffer = io.BytesIO()
        record["image"].save(buffer, format="PNG")
        record["image"] = base64.b64encode(buffer.getvalue()).decode()
        records.append(record)
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.tsv"
    pd.DataFrame(records).to_csv(path, sep="\t", index=False)
    return path
