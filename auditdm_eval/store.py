"""The audited dataset on disk: parquet shards written as the run goes, resumable.

Layout of an output directory::

    manifest.json          what the run is (models, modes, prompts, judge); a rerun must match
    data/test-<writer>-00000.parquet  shards of FEATURES rows, images embedded; each written atomically
    issues.jsonl           inputs or model calls that were skipped, with the fix
    summary.json           counts, written at the end of each run
    corrupt/               shards found unreadable on resume, moved aside (their probes are redone)
    .auditdm.lock          held by the one live run that owns the directory

One run owns the directory at a time (:meth:`AuditStore.open` takes the lock, :meth:`close` or
the process's end gives it back). Shard and temporary names carry the writer's id, unique per
store instance, so several writers never collide; readers accept the older ``test-00000.parquet``
names too. ``datasets.load_dataset("parquet", data_dir=<out>/data)`` or :func:`load_audit` reads
it back.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.table import InMemoryTable

from .records import FEATURES, AuditRecord
from .runlock import LOCK_NAME, RunLock, RunLockHeld, describe_holder
from .sources import stable_message

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SPLIT = "test"
CORRUPT = "corrupt"
# Columns every audit shard has had since the first format; later columns may be missing (read as null).
CORE_COLUMNS = ("probe_id", "source_id", "mode", "image", "question", "target_answer", "is_failure")
# What `auditdm report` and `auditdm push --dry-run` derive from a run, at their default places:
# removed with the run it describes when --overwrite replaces it (nothing else in those folders).
DERIVED_FILES = {"report": ("report.md", "failure_rates.png", "comparison.png"), "hub": ("README.md", "manifest.json", "data/*.parquet")}


class StoreError(RuntimeError):
    """An output directory cannot be used as asked; the message says why and what to do."""


class RunMismatchError(StoreError):
    pass


class OutputInUseError(RunMismatchError):
    """Another live run owns the output directory."""

    def __init__(self, message: str, holder: dict[str, Any]):
        super().__init__(message)
        self.holder = holder


class CorruptShardError(StoreError):
    """A shard of the audit cannot be read; ``path`` names it."""

    def __init__(self, path: Path, reason: str, root: Path | None = None):
        root = root or path.parent.parent
        super().__init__(
            f"{path} is not a readable audit shard: {reason}. Rerun the audit with the same settings and the same "
            f"--out {root} to move it aside and recompute its probes, or move the file out of {path.parent}."
        )
        self.path, self.reason = path, reason


@dataclass
class Issue:
    """Something skipped: an input that could not be used or a model call that failed, and what to do."""

    source_id: str
    mode: str
    stage: str
    message: str
    fix: str = ""

    def __post_init__(self) -> None:
        self.message = stable_message(self.message)
        if self.stage == "input" and not self.fix and " -> " in self.message:
            # written as "<message> -> <fix>" before issues had a fix field
            self.message, self.fix = self.message.rsplit(" -> ", 1)

    def key(self) -> tuple[str, str, str, str]:
        return (self.source_id, self.mode, self.stage, self.message)

    def __str__(self) -> str:
        return f"{self.source_id}: {self.message}" + (f" -> {self.fix}" if self.fix else "")


def new_writer_id() -> str:
    """Sortable by start time, unique per writer: ``20251123T113000-3fa2c1``."""
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"


class AuditStore:
    """One output directory. ``open()`` takes it for a run (``with AuditStore(out) as store``, or
    ``close()``; a store that is garbage-collected or a process that dies lets it go too)."""

    def __init__(self, out_dir: str | Path, writer_id: str | None = None):
        self.root = Path(out_dir)
        self.data_dir = self.root / "data"
        self.issues_path = self.root / "issues.jsonl"
        self.corrupt_dir = self.root / CORRUPT
        self.writer_id = writer_id or new_writer_id()
        self.moved_aside: list[Path] = []  # corrupt shards this store moved to corrupt/ on open
        self._next_index = 0
        self._known_issues: tuple[tuple[int, int] | None, set[tuple[str, str, str, str]]] | None = None
        self._lock = RunLock(self.root, writer=self.writer_id)
        self._release = weakref.finalize(self, self._lock.release)

    # -- ownership ----------------------------------------------------------------------------
    def close(self) -> None:
        """Give the directory back (the files stay)."""
        self._lock.release()

    def __enter__(self) -> AuditStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _acquire(self) -> None:
        try:
            self._lock.acquire()
        except RunLockHeld as held:
            if held.holder.get("pid") == os.getpid() and held.holder.get("host") == socket.gethostname():
                message = (
                    f"{self.root} is held by another AuditStore of this same process that is still open: close() it "
                    "first (or use `with AuditStore(out) as store:`), or pass another --out."
                )
            else:
                message = (
                    f"{self.root} is in use by another audit run ({describe_holder(held.holder)}). Wait for it to finish "
                    "or stop it, or pass another --out. (A run that was killed gives the folder back by itself.)"
                )
            raise OutputInUseError(message, held.holder) from None

    # -- run identity -------------------------------------------------------------------------
    def open(self, identity: dict[str, Any], overwrite: bool = False) -> bool:
        """Take the directory for the run described by ``identity``.

        Returns True when an earlier run with the same identity is resumed (its shards are checked
        and unreadable ones moved aside, see :attr:`moved_aside`). Refuses a directory that another
        live run holds (:class:`OutputInUseError`), or that holds a different run or unrelated files
        (:class:`RunMismatchError`), so nothing already written is lost.
        """
        if not overwrite and not (self.root / MANIFEST).exists() and self._foreign_files():
            raise self._not_a_run()  # before the lock file is made: a foreign folder is left as it was
        self.root.mkdir(parents=True, exist_ok=True)
        took = not self._lock.held
        self._acquire()
        try:
            return self._open_locked(identity, overwrite)
        except BaseException:
            if took:
                self.close()
            raise

    def _open_locked(self, identity: dict[str, Any], overwrite: bool) -> bool:
        manifest = self.root / MANIFEST
        if manifest.exists():
            previous = json.loads(manifest.read_text())["identity"]
            if previous == identity:
                self._recover()
                return True
            if not overwrite:
                changed = sorted(k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k))
                details = "; ".join(f"{k}: {previous.get(k)!r} -> {identity.get(k)!r}" for k in changed)
                raise RunMismatchError(
                    f"{self.root} holds another audit run ({details}). Pass a new --out directory to keep "
                    "both, rerun with the same settings to resume it, or pass --overwrite to replace it."
                )
            self._clear()
        elif self._foreign_files() and not overwrite:
            raise self._not_a_run()
        self.data_dir.mkdir(exist_ok=True)
        self._write_json(manifest, {"format": 1, "identity": identity})
        return False

    def _foreign_files(self) -> list[Path]:
        return [p for p in self.root.iterdir() if p.name != LOCK_NAME] if self.root.is_dir() else []

    def _not_a_run(self) -> RunMismatchError:
        return RunMismatchError(
            f"{self.root} is not empty and holds no audit run ({MANIFEST} missing): pass an empty or new "
            "--out directory (or --overwrite to write into it anyway)."
        )

    def _clear(self) -> None:
        """Remove the replaced run: its shards, records, moved-aside shards and derived files
        (report/, hub/ at their default places). Human review labels are kept, renamed."""
        for shard in self.shards():
            shard.unlink()
        self._remove_temp_files()
        for name in (MANIFEST, "issues.jsonl", "summary.json"):
            (self.root / name).unlink(missing_ok=True)
        if self.corrupt_dir.is_dir():
            shutil.rmtree(self.corrupt_dir)
        for folder, patterns in DERIVED_FILES.items():
            _remove_files(self.root / folder, patterns)
        labels = self.root / "labels.jsonl"
        if labels.exists():
            kept = labels.with_name(f"labels-replaced-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}.jsonl")
            labels.rename(kept)
            logger.warning("review labels of the replaced run kept as %s (they describe its probes, not the new run's)", kept)

    def _remove_temp_files(self) -> None:
        """Half-written files of writers that are gone (only called while holding the directory)."""
        for folder in (self.root, self.data_dir):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)

    # -- shards -------------------------------------------------------------------------------
    def shards(self) -> list[Path]:
        """Every shard, in write order: ``test-00000.parquet`` (older runs, pulled copies) and
        ``test-<writer id>-00000.parquet``."""
        return sorted(self.data_dir.glob(f"{SPLIT}-*.parquet")) if self.data_dir.exists() else []

    def _recover(self) -> None:
        """On resume: drop dead writers' temporary files and move unreadable shards aside."""
        self._remove_temp_files()
        for shard in self.shards():
            reason = shard_problem(shard)
            if reason is None:
                continue
            self.corrupt_dir.mkdir(exist_ok=True)
            target = self.corrupt_dir / shard.name
            while target.exists():
                target = target.with_name(f"{target.stem}-{secrets.token_hex(2)}{target.suffix}")
            shard.rename(target)
            self.moved_aside.append(target)
            logger.warning("%s is not a readable audit shard (%s): moved to %s; its probes are computed again", shard, reason, target)
            self.add_issues([Issue(
                f"data/{shard.name}", "*", "store", f"unreadable shard ({reason}), moved to {CORRUPT}/{target.name}",
                f"its probes are computed again by this run; delete {CORRUPT}/ once you no longer need it",
            )])

    def done_probe_ids(self) -> set[str]:
        done: set[str] = set()
        for shard in self.shards():
            try:
                done.update(pq.read_table(shard, columns=["probe_id"]).column("probe_id").to_pylist())
            except Exception as error:  # noqa: BLE001 - name the file whatever pyarrow says
                raise CorruptShardError(shard, shard_problem(shard) or _reason(error), self.root) from error
        return done

    def write_shard(self, records: Sequence[AuditRecord]) -> Path | None:
        if not records:
            return None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        while True:
            path = self.data_dir / f"{SPLIT}-{self.writer_id}-{self._next_index:05d}.parquet"
            self._next_index += 1
            if not path.exists():
                break
        tmp = path.with_name(f".{path.name}.tmp")
        dataset = rows_to_dataset([record.to_row() for record in records])
        dataset.to_parquet(str(tmp), **row_groups(dataset.data.table))
        os.replace(tmp, path)  # atomic: a killed run leaves whole shards only
        return path

    # -- issues -------------------------------------------------------------------------------
    def issues(self) -> list[Issue]:
        if not self.issues_path.exists():
            return []
        known = {f.name for f in fields(Issue)}
        issues = []
        for line in self.issues_path.read_text().splitlines():
            if line.strip():
                issues.append(Issue(**{k: v for k, v in json.loads(line).items() if k in known}))
        return issues

    def add_issues(self, issues: Iterable[Issue]) -> None:
        """Append the issues not yet recorded (the same problem is recorded once, however many reruns)."""
        known = self._issue_keys()
        new = []
        for issue in issues:
            if issue.key() not in known:
                known.add(issue.key())
                new.append(issue)
        if new:
            with self.issues_path.open("a") as handle:
                for issue in new:
                    handle.write(json.dumps(asdict(issue)) + "\n")
            self._known_issues = (_file_state(self.issues_path), known)

    def _issue_keys(self) -> set[tuple[str, str, str, str]]:
        """The keys of the recorded issues, read again only when the file changed since this store last saw it."""
        state = _file_state(self.issues_path)
        if self._known_issues is None or self._known_issues[0] != state:
            self._known_issues = (state, {issue.key() for issue in self.issues()})
        return self._known_issues[1]

    def record_parts(self, parts: dict[str, Any]) -> None:
        """Write into the manifest each part of the run (stages, source) with its name and arguments."""
        manifest = self.root / MANIFEST
        self._write_json(manifest, {**json.loads(manifest.read_text()), "parts": parts})

    def skipped_inputs(self, limit: int | None = None) -> list[Issue]:
        """The input files (or rows) the run could not use, in the order met; the first ``limit``."""
        skipped = [issue for issue in self.issues() if issue.stage == "input"]
        return skipped[:limit] if limit is not None else skipped

    # -- reading ------------------------------------------------------------------------------
    def load(self) -> datasets.Dataset:
        return load_audit(self.root)

    def write_summary(self, summary: dict[str, Any]) -> None:
        self._write_json(self.root / "summary.json", summary)

    def _write_json(self, path: Path, payload: dict[str, Any]) -> None:
        tmp = path.with_name(f".{path.name}.{self.writer_id}.tmp")
        tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
        os.replace(tmp, path)


def rows_to_dataset(rows: Sequence[dict[str, Any]]) -> datasets.Dataset:
    """Rows of :data:`FEATURES` as a dataset, written by ``datasets``' own parquet writer exactly as
    ``Dataset.from_list(rows, features=FEATURES)`` would be, without its costs that a shard does not
    need: hashing the whole table (images included) into a fingerprint, and copying the rows."""
    columns = FEATURES.encode_batch({name: [row.get(name) for row in rows] for name in FEATURES})
    table = InMemoryTable.from_pydict(columns, schema=FEATURES.arrow_schema)
    return datasets.Dataset(table, info=datasets.DatasetInfo(features=FEATURES), fingerprint=secrets.token_hex(8))


def row_groups(table: pa.Table) -> dict[str, int]:
    """The rows per row group ``Dataset.to_parquet`` would choose for a shard (row groups of at most
    ``datasets.config.MAX_ROW_GROUP_SIZE``), without its estimate of the dataset's size, which reads
    the table through the dataset's formatting: the images of a shard are embedded bytes, counted as
    they are, their null paths not."""
    try:
        from datasets.arrow_writer import get_writer_batch_size_from_data_size, get_writer_batch_size_from_features
    except ImportError:  # another datasets release: let it choose
        return {}
    nbytes = table.nbytes - sum(table.column(name).combine_chunks().field("path").nbytes for name in IMAGE_COLUMNS)
    rows = get_writer_batch_size_from_features(FEATURES) or get_writer_batch_size_from_data_size(table.num_rows, nbytes)
    return {"batch_size": rows}


IMAGE_COLUMNS = tuple(name for name, feature in FEATURES.items() if isinstance(feature, datasets.Image))


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def _remove_files(folder: Path, patterns: Sequence[str]) -> None:
    """Remove the files matching ``patterns`` under ``folder``, then the folders left empty; keep anything else."""
    if folder.is_symlink() or not folder.is_dir():
        return
    for pattern in patterns:
        for path in folder.glob(pattern):
            if path.is_file():
                path.unlink()
    for path in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True) + [folder]:
        if not any(path.iterdir()):
            path.rmdir()
    if folder.exists():
        logger.warning("%s holds files the replaced run did not write: left in place", folder)


def _reason(error: BaseException) -> str:
    return stable_message(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)


def _same_type(found: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_string(found) or pa.types.is_large_string(found):
        return pa.types.is_string(expected) or pa.types.is_large_string(expected)
    if pa.types.is_binary(found) or pa.types.is_large_binary(found):
        return pa.types.is_binary(expected) or pa.types.is_large_binary(expected)
    if isinstance(found, (pa.ListType, pa.LargeListType)):
        return isinstance(expected, (pa.ListType, pa.LargeListType)) and _same_type(found.value_type, expected.value_type)
    if isinstance(found, pa.StructType):
        if not isinstance(expected, pa.StructType):
            return False
        wanted = {expected.field(i).name: expected.field(i).type for i in range(expected.num_fields)}
        return all(f.name in wanted and _same_type(f.type, wanted[f.name]) for f in (found.field(i) for i in range(found.num_fields)))
    return found.equals(expected)


def shard_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable audit shard (footer, schema, probe ids), or None when it is."""
    try:
        schema = pq.read_schema(path)
    except Exception as error:  # noqa: BLE001
        return f"unreadable parquet footer: {_reason(error)}"
    missing = [name for name in CORE_COLUMNS if name not in schema.names]
    if missing:
        return f"missing column(s) {', '.join(missing)}"
    expected = FEATURES.arrow_schema
    for field in schema:
        if field.name in expected.names and not _same_type(field.type, expected.field(field.name).type):
            return f"column {field.name} is {field.type}, expected {expected.field(field.name).type}"
    try:
        pq.read_table(path, columns=["probe_id"])
    except Exception as error:  # noqa: BLE001
        return f"unreadable data: {_reason(error)}"
    return None


def load_audit(out_dir: str | Path) -> datasets.Dataset:
    """The audited dataset of an output directory, with the full schema.

    Raises :class:`CorruptShardError`, naming the file, when a shard cannot be read."""
    store = AuditStore(out_dir)
    shards = store.shards()
    if not shards:
        raise FileNotFoundError(f"{out_dir} holds no audit shards (data/{SPLIT}-*.parquet)")
    for shard in shards:
        reason = shard_problem(shard)
        if reason:
            raise CorruptShardError(shard, reason, store.root)
    files = {SPLIT: [str(s) for s in shards]}
    try:
        if set(FEATURES) - set(pq.read_schema(shards[0]).names):  # written before a column was added: read it as null
            return with_schema(datasets.load_dataset("parquet", data_files=files, split=SPLIT))
        return datasets.load_dataset("parquet", data_files=files, features=FEATURES, split=SPLIT)
    except Exception as error:
        for shard in shards:  # damage past the footer and the probe ids: find the file it is in
            try:
                pq.read_table(shard)
            except Exception as shard_error:  # noqa: BLE001
                raise CorruptShardError(shard, f"unreadable data: {_reason(shard_error)}", store.root) from error
        raise


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
