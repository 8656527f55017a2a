"""lmms-eval tasks over an audited dataset, in a portable folder that needs lmms-eval alone.

:func:`write_tasks` writes ``<tasks_dir>/<name>/``:

- ``_auditdm_<name>.yaml``: the group ``auditdm_<name>``, the audit as one benchmark. It runs each
  per-type task once and reports accuracy and failure rate over all the audit's probes.
- ``auditdm.<name>.<failure type>.yaml``: one task per failure type. Their names do not start
  with ``auditdm_``, so ``--tasks "auditdm_*"`` selects each audit once and scores each probe
  once; ``--tasks "auditdm.<name>.*"`` selects the types alone.
- ``data/test-<failure type>.parquet``: the answerable probes of each type (those the reference
  ensemble agreed on; the others have no trustworthy answer), with the audit's own columns and
  image bytes, referenced by a path relative to the YAML (lmms-eval resolves it from any working
  directory). ``manifest.json``: the audit's, when it has one. The folder is itself an audited
  dataset: ``load_audit``, ``auditdm-vlmeval --data`` and ``write-tasks`` read it.
- ``utils.py``: :mod:`.lmms_eval_task_utils` as it is (lmms-eval's VQA normalisation and exact
  match; no auditdm_eval import).

``lmms-eval --tasks "auditdm_*" --include_path <tasks_dir>`` then runs every audit in the folder.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from model_adapters.families import SHORT_ANSWER_SUFFIX

from .. import audited
from ..store import answer_length, load_audited
from .identity import MANIFEST, AuditIdentity, identify, manifest_of, slug

TASK_PREFIX = "auditdm"
TASK_VERSION = 2.0
UTILS_TEMPLATE = Path(__file__).with_name("lmms_eval_task_utils.py")


@dataclass
class WrittenTasks:
    directory: Path
    group: str  # auditdm_<name>: the audit as one benchmark
    type_tasks: dict[str, str]  # failure type -> task
    identity: AuditIdentity
    probes: int
    replaced: str | None = None  # audit id of a different audit this write replaced

    @property
    def task(self) -> str:  # what to pass to --tasks
        return self.group


def group_name(name: str) -> str:
    return f"{TASK_PREFIX}_{name}"


def type_task_name(name: str, failure_type: str) -> str:
    return f"{TASK_PREFIX}.{name}.{slug(failure_type)}"


def dataset_reference(dataset: str) -> dict[str, Any]:
    """YAML keys that make lmms-eval load ``dataset`` where it is (an audit output dir, a saved
    dataset, or a Hub id): for a task of your own that references an audit instead of carrying
    its probes (the folders :func:`write_tasks` writes carry them)."""
    path = Path(dataset).expanduser()
    if (path / "data").is_dir() and any((path / "data").glob("test-*.parquet")):
        return {"dataset_path": "parquet", "dataset_kwargs": {"data_files": {"test": str(path.resolve() / "data" / "test-*.parquet")}}}
    if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
        return {"dataset_path": str(path.resolve()), "dataset_kwargs": {"load_from_disk": True}}
    if path.exists():
        raise ValueError(f"{dataset} is neither an audit output directory (data/test-*.parquet) nor a saved dataset")
    return {"dataset_path": dataset}


def _type_task(task: str, failure_type: str, data_file: str, identity: AuditIdentity, max_new_tokens: int) -> dict[str, Any]:
    return {
        "task": task,
        "task_alias": failure_type,
        "dataset_path": "parquet",
        "dataset_kwargs": {"data_files": {"test": data_file}},  # relative to this file
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_visual": "!function utils.doc_to_visual",
        "doc_to_text": "!function utils.doc_to_text",
        "doc_to_target": "!function utils.doc_to_target",
        "process_results": "!function utils.process_results",
        "generation_kwargs": {"max_new_tokens": max_new_tokens, "temperature": 0, "do_sample": False, "until": ["\n\n"]},
        "metric_list": [
            {"metric": "accuracy", "aggregation": "mean", "higher_is_better": True},
            {"metric": "failure_rate", "aggregation": "!function utils.failure_rate", "higher_is_better": False},
        ],
        "lmms_eval_specific_kwargs": {"default": {"pre_prompt": "", "post_prompt": SHORT_ANSWER_SUFFIX}},
        "metadata": {"version": TASK_VERSION, "audit": identity.name, "audit_id": identity.audit_id, "failure_type": failure_type},
    }


def _group(group: str, tasks: list[str], identity: AuditIdentity) -> dict[str, Any]:
    return {
        "group": group,
        "task": tasks,
        "aggregate_metric_list": [
            {"metric": "accuracy", "aggregation": "mean", "weight_by_size": True},
            {"metric": "failure_rate", "aggregation": "!function utils.group_failure_rate", "weight_by_size": True},
        ],
        "metadata": {"version": TASK_VERSION, "audit": identity.name, "audit_id": identity.audit_id},
    }


class _Dumper(yaml.SafeDumper):
    pass


# strings with line breaks read best double-quoted ("\n\n"), not as folded blocks
_Dumper.add_representer(
    str, lambda dumper, text: dumper.represent_scalar("tag:yaml.org,2002:str", text, style='"' if "\n" in text else None)
)


def _dump(path: Path, config: dict[str, Any], header: str) -> None:
    # lmms-eval resolves "!function" tags: write them as tags, not as quoted strings
    text = yaml.dump(config, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1000)
    path.write_text(header + re.sub(r"'(!function [\w.]+)'", r"\1", text))


def written_identity(directory: Path) -> str | None:
    """The audit id of the tasks already in ``directory``, if any."""
    for group_file in directory.glob(f"_{TASK_PREFIX}_*.yaml"):
        text = group_file.read_text()
        found = re.search(r"audit_id: '?([0-9a-f]+)'?", text)
        if found:
            return found.group(1)
    return None


def write_tasks(
    dataset: str,
    tasks_dir: str | Path,
    name: str | None = None,
    failure_types: Iterable[str] | None = None,
    max_new_tokens: int | None = None,
) -> WrittenTasks:
    """Write the portable task folder of ``dataset`` (audit output dir, saved dataset, Hub id, or a
    task folder written before) as ``tasks_dir/<name>/``; ``name`` defaults to the audit's own."""
    import datasets

    rows = load_audited(dataset)
    identity = identify(dataset, rows, name)
    answerable = audited.answerable(rows)
    if not answerable.num_rows:
        raise ValueError(f"{dataset} holds no probe the reference ensemble agreed on: nothing to evaluate")
    types = sorted({audited.type_label(t) for t in answerable["failure_type"]})
    if failure_types is not None:
        unknown = sorted(set(failure_types) - set(types))
        if unknown:
            raise ValueError(f"failure type(s) {unknown} hold no answerable probe of {dataset}; its types: {', '.join(types)}")
        types = sorted(set(failure_types))
    max_new_tokens = max_new_tokens or answer_length(dataset) or 16  # ask as the audit asked

    directory = Path(tasks_dir) / identity.name
    replaced = written_identity(directory) if directory.is_dir() else None
    replaced = replaced if replaced and replaced != identity.audit_id else None
    staging = Path(tasks_dir) / f".{identity.name}.writing"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "data").mkdir(parents=True)
        # the probes as stored (image bytes untouched), without the source images the tasks never show
        undecoded = answerable.cast_column("image", datasets.Image(decode=False)).cast_column("source_image", datasets.Image(decode=False))
        header = f"# Written by `auditdm write-tasks` for the audit {identity.name!r} (id {identity.audit_id}); needs lmms-eval alone.\n"
        group = group_name(identity.name)
        type_tasks: dict[str, str] = {}
        for failure_type in types:
            subset = undecoded.filter(lambda value, t=failure_type: audited.type_label(value) == t, input_columns=["failure_type"])
            subset = subset.map(lambda _: {"source_image": None}).cast(rows.features)
            data_file = f"data/test-{slug(failure_type)}.parquet"
            subset.to_parquet(str(staging / data_file))
            task = type_task_name(identity.name, failure_type)
            _dump(staging / f"{task}.yaml", _type_task(task, failure_type, data_file, identity, max_new_tokens), header)
            type_tasks[failure_type] = task
        _dump(staging / f"_{group}.yaml", _group(group, list(type_tasks.values()), identity), header)
        shutil.copyfile(UTILS_TEMPLATE, staging / "utils.py")
        manifest = manifest_of(dataset)
        if manifest is not None:
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        if directory.exists():  # (also when rewriting a task folder from itself: its rows were read above)
            shutil.rmtree(directory)
        staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # never leave a half-written folder where lmms-eval looks
        raise
    return WrittenTasks(directory, group, type_tasks, identity, answerable.num_rows, replaced)


def repository_root(start: Path | None = None) -> Path | None:
    """The auditdm-eval checkout that contains ``start`` (default: the working directory)."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and re.search(r'^name\s*=\s*"auditdm-eval"', pyproject.read_text(), flags=re.M):
            return folder
    return None


def default_tasks_dir() -> Path:
    """``tasks/`` of the checkout the working directory is in, else ``$AUDITDM_HOME/lmms_eval_tasks``."""
    root = repository_root()
    if root is not None:
        return root / "tasks"
    from model_adapters.registry import auditdm_home

    return auditdm_home() / "lmms_eval_tasks"
