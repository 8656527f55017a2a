"""The audited dataset on disk: parquet shards written as the run goes, resumable.

Layout of an output directory::

    manifest.json          what the run is (models, modes, prompts, judge); a rerun must match
    data/test-00000.parquet  shards of FEATURES rows, images embedded; each written atomically
    issues.jsonl           inputs or model calls that were skipped, with the fix
    summary.json           counts, written at the end of each run

``datasets.load_dataset("parquet", data_dir=<out>/data)`` or :func:`load_audit` reads it back.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq

from .records import FEATURES, AuditRecord

MANIFEST = "manifest.json"
SPLIT = "test"


class RunMismatchError(RuntimeError):
    pass


@dataclass
class Issue:
    """Something skipped: an input that could not be used or a model call that failed."""

    source_id: str
    mode: str
    stage: str
    message: str

    def key(self) -> tuple[str, str, str, str]:
        return (self.source_id, self.mode, self.stage, self.message)


class AuditStore:
    def __init__(self, out_dir: str | Path):
        self.root = Path(out_dir)
        self.data_dir = self.root / "data"
        self.issues_path = self.root / "issues.jsonl"

    # -- run identity -------------------------------------------------------------------------
    def open(self, identity: dict[str, Any], overwrite: bool = False) -> bool:
        """Prepare the directory for the run described by ``identity``.

        Returns True when an earlier run with the same identity is resumed. Refuses a directory
        that holds a different run or unrelated files, so nothing already written is lost.
        """
        manifest = self.root / MANIFEST
        if manifest.exists():
            previous = json.loads(manifest.read_text())["identity"]
            if previous == identity:
                return True
            if not overwrite:
                changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
                details = "; ".join(f"{k}: {previous.get(k)!r} -> {identity.get(k)!r}" for k in changed)
                raise RunMismatchError(
                    f"{self.root} holds another audit run ({details}). Pass a new --out directory to keep "
                    "both, rerun with the same settings to resume it, or pass --overwrite to replace it."
                )
            self._clear()
        elif self.root.exists() and any(self.root.iterdir()) and not overwrite:
            raise RunMismatchError(
                f"{self.root} is not empty and holds no audit run ({MANIFEST} missing): pass an empty or new "
                "--out directory (or --overwrite to write into it anyway)."
            )
        self.root.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self._write_json(manifest, {"format": 1, "identity": identity})
        return False

    def _clear(self) -> None:
        for shard in self.shards():
            shard.unlink()
        for name in (MANIFEST, "issues.jsonl", "summary.json"):
            (self.root / name).unlink(missing_ok=True)

    # -- shards -------------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        return sorted(self.data_dir.glob(f"{SPLIT}-*.parquet")) if self.data_dir.exists() else []

    def done_probe_ids(self) -> set[str]:
        done: set[str] = set()
        for shard in self.shards():
            done.update(pq.read_table(shard, columns=["probe_id"]).column("probe_id").to_pylist())
        return done

    def write_shard(self, records: Sequence[AuditRecord]) -> Path | None:
        if not records:
            return None
        index = max((int(p.stem.split("-")[1]) for p in self.shards()), default=-1) + 1
        path = self.data_dir / f"{SPLIT}-{index:05d}.parquet"
        tmp = path.with_name(f".{path.name}.tmp")
        dataset = datasets.Dataset.from_list([record.to_row() for record in records], features=FEATURES)
        dataset.to_parquet(str(tmp))
        os.replace(tmp, path)  # atomic: a killed run leaves whole shards only
        return path

    # -- issues -------------------------------------------------------------------------------
    def issues(self) -> list[Issue]:
        if not self.issues_path.exists():
            return []
        return [Issue(**json.loads(line)) for line in self.issues_path.read_text().splitlines() if line.strip()]

    def add_issues(self, issues: Iterable[Issue]) -> None:
        known = {issue.key() for issue in self.issues()}
        new = [issue for issue in issues if issue.key() not in known]
        if new:
            with self.issues_path.open("a") as handle:
                for issue in new:
                    handle.write(json.dumps(asdict(issue)) + "\n")

    def record_parts(self, parts: dict[str, Any]) -> None:
        """Write into the manifest each part of the run (stages, source) with its name and arguments."""
        manifest = self.root / MANIFEST
        self._write_json(manifest, {**json.loads(manifest.read_text()), "parts": parts})

    # -- reading ------------------------------------------------------------------------------
    def load(self) -> datasets.Dataset:
        return load_audit(self.root)

    def write_summary(self, summary: dict[str, Any]) -> None:
        self._write_json(self.root / "summary.json", summary)

    @staticmethod
    def _write_json(path: Path, payload: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
        os.replace(tmp, path)


def load_audit(out_dir: str | Path) -> datasets.Dataset:
    """The audited dataset of an output directory, with the full schema."""
    shards = AuditStore(out_dir).shards()
    if not shards:
        raise FileNotFoundError(f"{out_dir} holds no audit shards (data/{SPLIT}-*.parquet)")
    columns = set(pq.read_schema(shards[0]).names)
    if set(FEATURES) - columns:  # written before a column was added: read it as null
        loaded = datasets.load_dataset("parquet", data_files={SPLIT: [str(s) for s in shards]}, split=SPLIT)
        return with_schema(loaded)
    return datasets.load_dataset("parquet", data_files={SPLIT: [str(s) for s in shards]}, features=FEATURES, split=SPLIT)


def with_schema(dataset: datasets.Dataset) -> datasets.Dataset:
    """``dataset`` with every column of :data:`FEATURES`, those it lacks filled with nulls."""
    for name in FEATURES:
        if name not in dataset.column_names:
            dataset = dataset.add_column(name, [None] * dataset.num_rows)
    return dataset.select_columns(list(FEATURES)).cast(FEATURES)


def load_audited(source: str | Path) -> datasets.Dataset:
    """An audited dataset from an audit output directory (or a pulled copy), a ``save_to_disk``
    directory, or a Hub dataset id."""
    path = Path(source)
    if (path / "data").is_dir():
        return load_audit(path)
    if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
        saved = datasets.load_from_disk(str(path))
        dataset = saved[SPLIT] if isinstance(saved, datasets.DatasetDict) else saved
    else:
        dataset = datasets.load_dataset(str(source), split=SPLIT)
    return dataset if set(FEATURES) <= set(dataset.column_names) else with_schema(dataset)


def answer_length(source: str | Path) -> int | None:
    """The answer length the audit asked with, when ``source`` is a local audit output."""
    manifest = Path(source) / MANIFEST
    if manifest.is_file():
        return json.loads(manifest.read_text())["identity"].get("answer_max_new_tokens")
    return None


def summarize(dataset: datasets.Dataset) -> dict[str, Any]:
    """Counts per mode: probes, ensemble agreement, discovered failures and the failure-search rate."""
    table = dataset.select_columns(["mode", "ensemble_agrees", "is_failure", "reward"]).to_pandas()
    per_mode = {}
    for mode, group in table.groupby("mode"):
        per_mode[mode] = {
            "probes": int(len(group)),
            "ensemble_agrees": int(group["ensemble_agrees"].sum()),
            "failures": int(group["is_failure"].sum()),
            "failure_rate": float(group["is_failure"].mean()) if len(group) else 0.0,
            "mean_reward": float(group["reward"].mean()) if len(group) else 0.0,
        }
    return {
        "probes": int(len(table)),
        "failures": int(table["is_failure"].sum()),
        "failure_rate": float(table["is_failure"].mean()) if len(table) else 0.0,
        "per_mode": per_mode,
    }
