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


ROOT = Path(__file__).resolve().parents[1]


def fresh_checkout(dest: Path) -> Path:
    """The repository as a fresh clone of this working tree has it: every file git tracks or would
    track (links kept as links), nothing it ignores (no .venv, no outputs)."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        source, target = ROOT / name, dest / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the working tree
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            target.symlink_to(source.readlink())
        else:
            shutil.copy2(source, target)
    return dest


def without_auditdm_eval(folder: Path) -> Path:
    """A folder to put first on PYTHONPATH so that ``import auditdm_eval`` fails, as on a machine
    that has lmms-eval and not this project."""
    package = folder / "auditdm_eval"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('raise ImportError("auditdm_eval is not installed on this machine")\n')
    return folder
