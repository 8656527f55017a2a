"""The real lmms-eval CLI over the portable auditdm task folders, with our model plugin and with
lmms-eval's own model classes."""

import ast
import collections
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from conftest import FAILURE_TYPES, make_typed_audit

pytest.importorskip("lmms_eval")

from auditdm_eval import audited as audited_view  # noqa: E402
from auditdm_eval.harness.lmms_eval_tasks import UTILS_TEMPLATE, write_tasks  # noqa: E402
from auditdm_eval.store import load_audit  # noqa: E402
from harness_data import ROOT, fresh_checkout, without_auditdm_eval  # noqa: E402

BIN = Path(sys.executable).parent
LMMS_EVAL = str(BIN / "lmms-eval")
TYPES = FAILURE_TYPES


@pytest.fixture(scope="module")
def audited(tiny_paths, tmp_path_factory):
    root = tmp_path_factory.mktemp("lmms")
    make_typed_audit(root, tiny_paths, first_seed=20)
    return root


@pytest.fixture(scope="module")
def tasks(audited):
    return write_tasks(str(audited / "audit"), audited / "tasks", name="set")


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    return fresh_checkout(tmp_path_factory.mktemp("clone"))


def lmms_env(home: Path, **extra) -> dict:
    return {**os.environ, "AUDITDM_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **extra}


def run_lmms_eval(args: list[str], out: Path, env: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, dict | None]:
    done = subprocess.run([LMMS_EVAL, *args, "--output_path", str(out), "--log_samples"], env=env,
                          capture_output=True, text=True, timeout=900, cwd=cwd)
    files = sorted(out.rglob("*_results.json")) if out.exists() else []
    return done, json.loads(files[-1].read_text()) if files else None


def logged(out: Path, tasks_root: Path, task_prefix: str = "") -> list[dict]:
    """lmms-eval's logged samples, each with the probe it scored (lmms-eval logs the row number in
    the task's data, not the row) and the model's answer."""
    found = []
    for path in sorted(out.rglob(f"*_samples_{task_prefix}*.jsonl")):
        task = path.stem.split("_samples_", 1)[1]
        config = next(tasks_root.rglob(f"{task}.yaml"))
        data_file = yaml.safe_load(config.read_text().replace("!function ", ""))["dataset_kwargs"]["data_files"]["test"]
        rows = pq.read_table(config.parent / data_file, columns=["probe_id", "consensus_answer"]).to_pylist()
        for line in path.read_text().splitlines():
            sample = json.loads(line)
            answer = sample["filtered_resps"]
            answer = answer[0] if isinstance(answer, list) else answer
            found.append({**rows[sample["doc_id"]], "task": task, "answer": answer})
    return found


def rows_of(folder: Path) -> list[dict]:
    return [r for r in load_audit(folder).select_columns(["probe_id", "failure_type", "consensus_answer", "ensemble_agrees",
                                                         "is_failure", "target_answer", "reference_answers"])]


def task_utils(path: Path = UTILS_TEMPLATE):
    spec = importlib.util.spec_from_file_location("auditdm_task_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- the task folder -----------------------------------------------------------------------------
def test_written_tasks_are_a_portable_folder(audited, tasks):
    folder = tasks.directory
    assert folder == audited / "tasks" / "set"
    assert tasks.group == "auditdm_set"
    assert tasks.type_tasks == {"color recognition": "auditdm.set.color_recognition", "counting": "auditdm.set.counting"}
    names = {p.name for p in folder.iterdir()}
    assert {"_auditdm_set.yaml", "auditdm.set.counting.yaml", "auditdm.set.color_recognition.yaml", "utils.py", "manifest.json", "data"} <= names
    group = yaml.safe_load((folder / "_auditdm_set.yaml").read_text().replace("!function ", ""))
    assert group["group"] == "auditdm_set" and group["task"] == list(tasks.type_tasks.values())
    assert {m["metric"] for m in group["aggregate_metric_list"]} == {"accuracy", "failure_rate"}
    counting = yaml.safe_load((folder / "auditdm.set.counting.yaml").read_text().replace("!function ", ""))
    assert counting["dataset_kwargs"]["data_files"] == {"test": "data/test-counting.parquet"}, "relative to the YAML"
    assert counting["generation_kwargs"]["max_new_tokens"] == 5, "asked as the audit asked"
    assert counting["metadata"]["audit_id"] == tasks.identity.audit_id
    # only the groups match the glob the README uses
    import fnmatch
    all_names = [group["group"], *tasks.type_tasks.values()]
    assert fnmatch.filter(all_names, "auditdm_*") == ["auditdm_set"]
    # utils.py needs lmms-eval alone
    assert (folder / "utils.py").read_text() == UTILS_TEMPLATE.read_text()
    imported = {n.module.split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
                for n in ast.walk(ast.parse((folder / "utils.py").read_text())) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [n])}
    assert imported <= {"__future__", "math", "lmms_eval"}, imported
    # the data: every answerable probe once, split by type, bytes as the audit stored them
    source = load_audit(audited / "audit")
    answerable = {r["probe_id"]: r for r in source if audited_view.is_answerable(r)}
    per_type = {t: pq.read_table(folder / "data" / f"test-{t.replace(' ', '_')}.parquet").to_pylist() for t in TYPES}
    written = [r["probe_id"] for rows in per_type.values() for r in rows]
    assert sorted(written) == sorted(answerable) and len(written) == len(set(written))
    for failure_type, rows in per_type.items():
        assert all(audited_view.type_label(r["failure_type"]) == failure_type for r in rows)
    stored = {r["probe_id"]: r["image"]["bytes"] for r in source.cast_column("image", __import__("datasets").Image(decode=False))}
    assert all(r["image"]["bytes"] == stored[r["probe_id"]] for rows in per_type.values() for r in rows)


def test_a_task_folder_rewrites_itself_identically(tasks, tmp_path):
    """The folder is an audited dataset: write-tasks reads it back and writes the same files."""
    default = write_tasks(str(tasks.directory), tmp_path / "default")
    assert default.identity.name == "tiny_paligemma2", "named after the audit's target (from its manifest)"
    assert default.identity.audit_id == tasks.identity.audit_id
    copy = write_tasks(str(tasks.directory), tmp_path / "copy", name="set")
    for path in sorted(p for p in tasks.directory.rglob("*") if p.is_file()):
        twin = copy.directory / path.relative_to(tasks.directory)
        assert twin.read_bytes() == path.read_bytes(), path.name


def test_write_tasks_defaults_to_the_repository_tasks_folder(audited, auditdm_home, tmp_path):
    clone = fresh_checkout(tmp_path / "clone")
    env = lmms_env(auditdm_home)
    inside = subprocess.run([str(BIN / "auditdm"), "write-tasks", str(audited / "audit"), "--name", "cli"], cwd=clone / "leaderboard",
                            env=env, capture_output=True, text=True, timeout=300)
    assert inside.returncode == 0, inside.stderr
    assert (clone / "tasks" / "cli" / "_auditdm_cli.yaml").exists(), "inside a checkout: its tasks/"
    assert '--tasks "auditdm_*" --include_path' in inside.stdout
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = subprocess.run([str(BIN / "auditdm"), "write-tasks", str(audited / "audit"), "--name", "cli"], cwd=elsewhere,
                             env={**env, "AUDITDM_HOME": str(tmp_path / "home")}, capture_output=True, text=True, timeout=300)
    assert outside.returncode == 0, outside.stderr
    assert (tmp_path / "home" / "lmms_eval_tasks" / "cli" / "_auditdm_cli.yaml").exists()
    shipped = sorted(p.name for p in (ROOT / "tasks").iterdir() if p.is_dir())
    assert shipped, "the repository ships the embedded default's tasks"


# -- scoring -------------------------------------------------------------------------------------
def test_lmms_eval_scoring_agrees_with_the_audit_on_the_projects_data(audited):
    """The task folders score with lmms-eval's normalisation and exact match; on every answer the
    project's audits and runs hold it decides as auditdm_eval.audited.is_correct does."""
    portable = task_utils()
    answers: list[tuple[str, str]] = []
    folders = [p for p in (ROOT / "tasks").iterdir() if (p / "data").is_dir()] + [audited / "audit"]
    for folder in folders:
        for row in load_audit(folder).select_columns(["target_answer", "reference_answers", "consensus_answer", "question"]):
            given = [row["target_answer"], *row["reference_answers"], row["consensus_answer"]]
            answers += [(a, b) for a in given for b in given]
    import pandas as pd

    for tsv in (ROOT / "leaderboard" / "runs" / "vlmeval").rglob("*_AuditDM_*.tsv"):
        frame = pd.read_csv(tsv, sep="\t")
        answers += [(str(p), str(a)) for p, a in zip(frame["prediction"].fillna(""), frame["answer"])]
    decided = collections.Counter()
    for prediction, answer in answers:
        ours = audited_view.is_correct(prediction, answer)
        assert portable.is_correct(prediction, answer) == ours, (prediction, answer)
        decided[ours] += 1
    assert decided[True] > 10 and decided[False] > 10, decided


# -- the lmms-eval CLI ---------------------------------------------------------------------------
def test_glob_runs_each_probe_once_and_the_group_reports_the_audit(audited, tasks, auditdm_home, tmp_path):
    """``--tasks "auditdm_*"``, from another directory with a relative --include_path: each probe
    is scored once, and the group reports accuracy and failure rate over the whole audit."""
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    include = os.path.relpath(tasks.directory.parent, elsewhere)
    rows = {r["probe_id"]: r for r in rows_of(audited / "audit") if audited_view.is_answerable(r)}
    results = {}
    for model in ("tiny-gemma3-seed1", "tiny-paligemma2"):
        out = tmp_path / model
        done, run = run_lmms_eval(["--model", "auditdm", "--model_args", f"pretrained={model}", "--tasks", "auditdm_*",
                                   "--include_path", include], out, lmms_env(auditdm_home), elsewhere)
        assert run, f"lmms-eval wrote no results:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        scored = logged(out, tasks.directory.parent)
        assert sorted(s["probe_id"] for s in scored) == sorted(rows), "every probe scored exactly once"
        correct = {s["probe_id"]: audited_view.is_correct(s["answer"], s["consensus_answer"]) for s in scored}
        group = run["results"]["auditdm_set"]
        assert group["accuracy,none"] == pytest.approx(audited_view.accuracy(list(correct.values())))
        assert group["failure_rate,none"] == pytest.approx(
            audited_view.failure_rate([correct[p] for p in rows], [rows[p]["is_failure"] for p in rows]))
        for failure_type, task in tasks.type_tasks.items():
            of_type = [p for p in rows if audited_view.type_label(rows[p]["failure_type"]) == failure_type]
            assert run["results"][task]["accuracy,none"] == pytest.approx(audited_view.accuracy([correct[p] for p in of_type]))
        assert set(run["group_subtasks"]["auditdm_set"]) == set(tasks.type_tasks.values())
        results[model] = group
    assert results["tiny-gemma3-seed1"]["accuracy,none"] == 1.0, "the model the consensus came from agrees with it"
    assert results["tiny-gemma3-seed1"]["failure_rate,none"] == 0.0
    assert results["tiny-paligemma2"]["accuracy,none"] < 1.0
    assert sum(r["is_failure"] for r in rows.values()) > 0
    assert results["tiny-paligemma2"]["failure_rate,none"] == 1.0, "the audited target fails its own discovered failures again"


def test_group_failure_rate_weighs_each_type_by_its_discovered_failures():
    portable = task_utils()
    counting = portable.failure_rate([{"discovered": True, "failed": 1.0}] * 3 + [{"discovered": False, "failed": 1.0}] * 5)
    colour = portable.failure_rate([{"discovered": True, "failed": 0.0}] + [{"discovered": False, "failed": 0.0}] * 7)
    empty = portable.failure_rate([{"discovered": False, "failed": 1.0}] * 4)
    assert (float(counting), counting.over, float(colour), colour.over) == (1.0, 3, 0.0, 1)
    assert portable.group_failure_rate([counting, colour, empty], [8, 8, 4]) == pytest.approx(3 / 4), "3 of the 4 discovered failures"
    assert portable.group_failure_rate([float(counting), float(colour), float(empty)], [8, 8, 4]) == pytest.approx(0.5), "counts lost: by size"


@pytest.mark.slow
def test_model_arguments_as_the_readme_writes_them(tasks, auditdm_home, tmp_path):
    env = lmms_env(auditdm_home)
    base = ["--model", "auditdm", "--tasks", "auditdm_*", "--include_path", str(tasks.directory.parent), "--limit", "2"]
    cases = {
        "readme": (["--model_args", "pretrained=tiny-gemma3-seed1,batch_size=8,dtype=bfloat16"], "batch size 8 (from model_args)"),
        "flag": (["--model_args", "pretrained=tiny-gemma3-seed1", "--batch_size", "4"], "batch size 4 (from --batch_size)"),
    }
    for case, (args, said) in cases.items():
        done, run = run_lmms_eval(base + args, tmp_path / case, env, tmp_path)
        assert run is not None, f"{case}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert said in done.stdout + done.stderr, case
    # the rest as lmms-eval's evaluator builds the model (its registry, then create_from_arg_string with
    # its own batch_size, max_batch_size and device), without a run each
    from lmms_eval import models

    model_class = models.get_model("auditdm")
    harness_defaults = {"batch_size": 1, "max_batch_size": None, "device": None}
    assert model_class.create_from_arg_string("pretrained=tiny-gemma3-seed1", harness_defaults).batch_size == 8, "the default"
    refused = {
        "typo": ("pretrained=tiny-gemma3-seed1,dtyp=bfloat16", "unknown auditdm model argument(s) 'dtyp' (did you mean 'dtype'?)"),
        "auto": ("pretrained=tiny-gemma3-seed1,batch_size=auto", "batch_size=auto: the auditdm model does not search for a batch size"),
    }
    for case, (model_args, said) in refused.items():
        with pytest.raises(Exception, match=re.escape(said)):
            model_class.create_from_arg_string(model_args, harness_defaults)


@pytest.mark.slow
def test_lmms_eval_plugins_variable_runs_and_points_at_the_tasks(tasks, auditdm_home, tmp_path):
    done, run = run_lmms_eval(["--model", "auditdm", "--model_args", "pretrained=tiny-gemma3-seed1", "--tasks", "auditdm_*",
                               "--include_path", str(tasks.directory.parent), "--limit", "2"], tmp_path / "out",
                              lmms_env(auditdm_home, LMMS_EVAL_PLUGINS="auditdm_eval"), tmp_path)
    assert run is not None and "auditdm_set" in run["results"], f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "ModuleNotFoundError" not in done.stdout + done.stderr
    # what lmms-eval adds to the task path for the plugin: the repository's tasks/, indexed
    from lmms_eval.tasks import TaskManager

    location = importlib.util.find_spec("auditdm_eval.tasks").submodule_search_locations[0]
    assert Path(location).resolve() == (ROOT / "tasks").resolve()
    found = TaskManager("WARNING", include_path=location).match_tasks(["auditdm_*"])
    shipped = sorted(f"auditdm_{p.name}" for p in (ROOT / "tasks").iterdir() if p.is_dir())
    assert found == shipped


@pytest.mark.slow
def test_shipped_tasks_run_from_a_fresh_clone(clone, auditdm_home, tmp_path):
    """``lmms-eval --tasks "auditdm_*" --include_path tasks`` in a fresh clone: every shipped
    audit, each probe once; a reference model scores exactly what its stored answers say (all of it
    where it alone is the consensus; a noisy ensemble member, the share where it sided with the majority)."""
    folders = [p for p in (clone / "tasks").iterdir() if p.is_dir()]
    assert folders
    for folder in folders:
        reference = json.loads((folder / "manifest.json").read_text())["identity"]["references"][0]
        out = tmp_path / folder.name
        done, run = run_lmms_eval(["--model", "auditdm", "--model_args", f"pretrained={reference}", "--tasks", f"auditdm_{folder.name}",
                                   "--include_path", "tasks"], out, lmms_env(auditdm_home), clone)
        assert run is not None, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        rows = rows_of(folder)
        assert sorted(s["probe_id"] for s in logged(out, clone / "tasks")) == sorted(r["probe_id"] for r in rows)
        stored = sum(audited_view.is_correct(r["reference_answers"][0], r["consensus_answer"]) for r in rows) / len(rows)
        assert run["results"][f"auditdm_{folder.name}"]["accuracy,none"] == pytest.approx(stored)
        assert stored > 0.85


@pytest.mark.slow
def test_lmms_eval_own_qwen2_5_vl_class_runs_the_tasks_without_auditdm_eval(clone, tiny_paths, auditdm_home, tmp_path):
    """Any lmms-eval model runs the tasks: lmms-eval's own qwen2_5_vl class on a tiny Qwen2.5-VL
    checkpoint on CPU, with the README's command, on a machine where auditdm_eval cannot even be
    imported."""
    readme = (ROOT / "README.md").read_text()
    command = next(line.strip() for line in readme.splitlines() if line.strip().startswith("lmms-eval --model qwen2_5_vl"))
    args = command.split()[1:]
    model_args = args.index("--model_args") + 1
    args[model_args] = f"pretrained={tiny_paths['tiny-qwen2.5-vl']},device=cpu,device_map=cpu"
    args = [a.strip('"') for a in args]
    out_flag = args.index("--output_path")
    out = tmp_path / "qwen"
    args[out_flag + 1] = str(out)
    stub = without_auditdm_eval(tmp_path / "stub")
    env = lmms_env(auditdm_home, PYTHONPATH=str(stub))
    check = subprocess.run([sys.executable, "-c", "import auditdm_eval"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert check.returncode != 0, "auditdm_eval is importable: the test would prove nothing"
    done = subprocess.run([LMMS_EVAL, *args, "--log_samples"], env=env, capture_output=True, text=True, timeout=900, cwd=clone)
    files = sorted(out.rglob("*_results.json"))
    assert files, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    run = json.loads(files[-1].read_text())
    assert run["config"]["model"] == "qwen2_5_vl"
    for folder in (p for p in (clone / "tasks").iterdir() if p.is_dir()):
        scored = logged(out, clone / "tasks", f"auditdm.{folder.name}.")
        assert sorted(s["probe_id"] for s in scored) == sorted(r["probe_id"] for r in rows_of(folder))
        correct = [audited_view.is_correct(s["answer"], s["consensus_answer"]) for s in scored]
        assert run["results"][f"auditdm_{folder.name}"]["accuracy,none"] == pytest.approx(audited_view.accuracy(correct))
