"""lmms-eval tasks over an audited dataset: ``auditdm_<name>``, one per failure type, and a group.

:func:`write_tasks` writes the YAMLs (and a two-line ``utils.py`` that points here) for a local
audit output directory or a Hub dataset id; pass the directory to ``lmms-eval --include_path``.
Only probes the reference ensemble agreed on are scored (the others have no trustworthy answer).

Metrics per task:
- ``accuracy``: the model's answer matches the ensemble's consensus (VQA normalisation + exact).
- ``failure_rate``: of the probes that were discovered failures of the audited target, the share
  this model fails too (NaN when the task holds none).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from model_adapters.families import SHORT_ANSWER_SUFFIX

from .. import audited
from ..store import answer_length

TASK_PREFIX = "auditdm"


# -- functions the task YAMLs call ---------------------------------------------------------------
def doc_to_visual(doc: dict[str, Any]) -> list:
    return [doc["image"].convert("RGB")]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question'].strip()}{kwargs.get('post_prompt', SHORT_ANSWER_SUFFIX)}"


def doc_to_target(doc: dict[str, Any]) -> str:
    return doc["consensus_answer"] or ""


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    correct = float(audited.is_correct(results[0], doc["consensus_answer"]))
    return {
        "accuracy": correct,
        "failure_rate": {"discovered": bool(doc["is_failure"]), "failed": 1.0 - correct},
    }


def aggregate_accuracy(items: list[float]) -> float:
    return audited.accuracy(items)


def aggregate_failure_rate(items: list[dict[str, Any]]) -> float:
    return audited.failure_rate([1.0 - item["failed"] for item in items], [item["discovered"] for item in items])


def answerable(dataset):
    return audited.answerable(dataset)


def of_type(dataset, failure_type: str):
    return answerable(dataset).filter(lambda value: audited.type_label(value) == failure_type, input_columns=["failure_type"])


# -- writing the task files -----------------------------------------------------------------------
@dataclass
class WrittenTasks:
    directory: Path
    task: str
    type_tasks: dict[str, str]
    group: str | None


def slug(text: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return cleaned or "unnamed"


def dataset_reference(dataset: str) -> dict[str, Any]:
    """YAML keys that make lmms-eval load ``dataset``: an audit output dir, a saved dataset, or a Hub id."""
    path = Path(dataset).expanduser()
    if (path / "data").is_dir() and any((path / "data").glob("test-*.parquet")):
        return {"dataset_path": "parquet", "dataset_kwargs": {"data_files": {"test": str(path.resolve() / "data" / "test-*.parquet")}}}
    if (path / "dataset_dict.json").exists() or (path / "dataset_info.json").exists():
        return {"dataset_path": str(path.resolve()), "dataset_kwargs": {"load_from_disk": True}}
    if path.exists():
        raise ValueError(f"{dataset} is neither an audit output directory (data/test-*.parquet) nor a saved dataset")
    return {"dataset_path": dataset}


def failure_types_of(dataset: str) -> list[str]:
    from ..store import load_audited

    column = load_audited(dataset).select_columns(["failure_type", *audited.ANSWERABLE_COLUMNS])
    return sorted({audited.type_label(row["failure_type"]) for row in column if audited.is_answerable(row)})


def _task_config(task: str, reference: dict[str, Any], process_docs: str, max_new_tokens: int) -> dict[str, Any]:
    return {
        "task": task,
        **reference,
        "test_split": "test",
        "output_type": "generate_until",
        "process_docs": f"!function utils.{process_docs}",
        "doc_to_visual": "!function utils.doc_to_visual",
        "doc_to_text": "!function utils.doc_to_text",
        "doc_to_target": "!function utils.doc_to_target",
        "process_results": "!function utils.process_results",
        "generation_kwargs": {"max_new_tokens": max_new_tokens, "temperature": 0, "do_sample": False, "until": ["\n\n"]},
        "metric_list": [
            {"metric": "accuracy", "aggregation": "!function utils.aggregate_accuracy", "higher_is_better": True},
            {"metric": "failure_rate", "aggregation": "!function utils.aggregate_failure_rate", "higher_is_better": False},
        ],
        "lmms_eval_specific_kwargs": {"default": {"pre_prompt": "", "post_prompt": SHORT_ANSWER_SUFFIX}},
        "metadata": {"version": 1.0},
    }


def _dump(path: Path, config: dict[str, Any]) -> None:
    # lmms-eval resolves "!function" tags: write them as tags, not as quoted strings
    text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=1000)
    path.write_text(re.sub(r"'(!function [\w.]+)'", r"\1", text))


def write_tasks(
    dataset: str,
    tasks_dir: str | Path,
    name: str | None = None,
    failure_types: Iterable[str] | None = None,
    max_new_tokens: int | None = None,
) -> WrittenTasks:
    """Write ``auditdm_<name>`` (all answerable probes), ``auditdm_<name>_<type>`` per failure type
    and the group ``auditdm_<name>_types`` under ``tasks_dir/<name>/``."""
    name = slug(name or Path(dataset.rstrip("/")).name)
    directory = Path(tasks_dir) / name
    directory.mkdir(parents=True, exist_ok=True)
    reference = dataset_reference(dataset)
    max_new_tokens = max_new_tokens or answer_length(dataset) or 16  # ask as the audit asked
    types = sorted(set(failure_types)) if failure_types is not None else failure_types_of(dataset)
    base = f"{TASK_PREFIX}_{name}"
    utils = [
        f'"""Generated by `auditdm tasks write` for {dataset}."""',
        "from auditdm_eval.harness.lmms_eval_tasks import (  # noqa: F401",
        "    aggregate_accuracy, aggregate_failure_rate, answerable, doc_to_target, doc_to_text,",
        "    doc_to_visual, of_type, process_results,",
        ")",
        "",
    ]
    _dump(directory / f"{base}.yaml", _task_config(base, reference, "answerable", max_new_tokens))
    type_tasks = {}
    for failure_type in types:
        function = f"docs_{slug(failure_type)}"
        utils += ["", f"def {function}(dataset):", f"    return of_type(dataset, {failure_type!r})", ""]
        task = f"{base}_{slug(failure_type)}"
        _dump(directory / f"{task}.yaml", _task_config(task, reference, function, max_new_tokens))
        type_tasks[failure_type] = task
    group = None
    if type_tasks:
        group = f"{base}_types"
        _dump(directory / f"_{group}.yaml", {"group": group, "task": list(type_tasks.values()), "metadata": {"version": 1.0}})
    (directory / "utils.py").write_text("\n".join(utils))
    return WrittenTasks(directory, base, type_tasks, group)


def default_tasks_dir() -> Path:
    from model_adapters.registry import auditdm_home

    return auditdm_home() / "lmms_eval_tasks"
