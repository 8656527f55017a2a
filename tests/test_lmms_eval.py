"""The real lmms-eval CLI over auditdm_* tasks written for an audited dataset, with our model plugin."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FAILURE_TYPES, make_typed_audit

pytest.importorskip("lmms_eval")

from auditdm_eval.harness.lmms_eval_tasks import write_tasks  # noqa: E402
from auditdm_eval.store import load_audit  # noqa: E402

LMMS_EVAL = str(Path(sys.executable).with_name("lmms-eval"))
TYPES = FAILURE_TYPES


@pytest.fixture(scope="module")
def audited(tiny_paths, tmp_path_factory):
    root = tmp_path_factory.mktemp("lmms")
    make_typed_audit(root, tiny_paths, first_seed=20)
    return root


def run_lmms_eval(model: str, tasks_dir: Path, out: Path, home: Path) -> dict:
    env = {**os.environ, "AUDITDM_HOME": str(home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [LMMS_EVAL, "--model", "auditdm", "--model_args", f"pretrained={model}", "--tasks", "auditdm_set*",
         "--include_path", str(tasks_dir), "--output_path", str(out), "--batch_size", "4"],
        env=env, capture_output=True, text=True, timeout=600, cwd=out.parent,
    )
    files = sorted(out.rglob("*_results.json"))
    assert files, f"lmms-eval wrote no results (it exits 0 even on failure):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(files[-1].read_text())["results"]


def test_tasks_are_written_per_failure_type_with_a_group(audited):
    written = write_tasks(str(audited / "audit"), audited / "tasks", name="set")
    assert written.task == "auditdm_set"
    assert written.type_tasks == {"color recognition": "auditdm_set_color_recognition", "counting": "auditdm_set_counting"}
    assert written.group == "auditdm_set_types"
    text = (written.directory / "auditdm_set.yaml").read_text()
    assert "!function utils.process_results" in text and "max_new_tokens: 5" in text
    assert str(audited / "audit" / "data" / "test-*.parquet") in text


def test_lmms_eval_scores_the_consensus_model_above_the_audited_target(audited, auditdm_home):
    write_tasks(str(audited / "audit"), audited / "tasks", name="set")
    right = run_lmms_eval("tiny-gemma3-seed1", audited / "tasks", audited / "right", auditdm_home)
    wrong = run_lmms_eval("tiny-paligemma2", audited / "tasks", audited / "wrong", auditdm_home)
    for results in (right, wrong):
        assert {"auditdm_set", "auditdm_set_counting", "auditdm_set_color_recognition", "auditdm_set_types"} <= set(results)
    assert right["auditdm_set"]["accuracy,none"] == 1.0, "the model the consensus came from agrees with it"
    assert wrong["auditdm_set"]["accuracy,none"] < right["auditdm_set"]["accuracy,none"]
    rows = load_audit(audited / "audit")
    discovered = sum(rows["is_failure"])
    assert discovered > 0
    assert wrong["auditdm_set"]["failure_rate,none"] == 1.0, "the audited target fails its own discovered failures again"
    per_type = {t: wrong[f"auditdm_set_{t.replace(' ', '_')}"]["accuracy,none"] for t in TYPES}
    counts = {t: sum(1 for r in rows if r["failure_type"] == t) for t in TYPES}
    correct = {t: sum(1 for r in rows if r["failure_type"] == t and not r["is_failure"]) for t in TYPES}
    for t in TYPES:
        assert per_type[t] == pytest.approx(correct[t] / counts[t])


def test_tasks_for_a_saved_dataset_read_its_failure_types(audited, tmp_path):
    saved = tmp_path / "saved"
    load_audit(audited / "audit").save_to_disk(str(saved))
    written = write_tasks(str(saved), tmp_path / "tasks", name="saved")
    assert set(written.type_tasks) == set(TYPES)
    assert "load_from_disk: true" in (written.directory / "auditdm_saved.yaml").read_text()
