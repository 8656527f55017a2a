"""The real ``auditdm`` console script, run as a user runs it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from auditdm_eval.records import FEATURES

AUDITDM = [str(Path(sys.executable).with_name("auditdm"))]


def run_cli(args, home, **kwargs):
    env = {**os.environ, "AUDITDM_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(AUDITDM + args, env=env, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.mark.slow
def test_embedded_default_runs_all_three_modes(tiny_paths, auditdm_home, tmp_path):
    out = tmp_path / "out"
    done = run_cli(["audit", "--out", str(out), "--limit", "2", "--no-progress"], auditdm_home)
    assert done.returncode == 0, done.stderr
    assert "TINY RANDOM" in done.stderr and "--target" in done.stderr, "says the models are random and what to pass"
    dataset = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="test")
    assert dataset.features == FEATURES
    assert sorted(set(dataset["mode"])) == ["edit", "question", "regenerate"]
    assert dataset.num_rows + json.loads((out / "summary.json").read_text())["issues"] == 6


@pytest.mark.slow
def test_killed_run_resumes_with_nothing_lost_or_duplicated(tiny_paths, auditdm_home, tmp_path, image_folder):
    from conftest import photo

    for i in range(3, 8):
        photo(i, (72, 56)).save(image_folder / f"more{i}.png")
    out = tmp_path / "out"
    args = [
        "audit", "--target", "tiny-paligemma2", "--ensemble", "tiny-gemma3-seed1,tiny-qwen2.5-vl",
        "--auditor", "tiny-gemma3", "--images", str(image_folder), "--out", str(out), "--batch-size", "1",
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ]
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(AUDITDM + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "data").glob("test-*.parquet"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    written_before = len(list((out / "data").glob("test-*.parquet")))
    assert 2 <= written_before < 8, "the run was killed part-way"
    again = run_cli(args, auditdm_home)
    assert again.returncode == 0, again.stderr
    assert "(resumed)" in again.stderr
    ids = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="test")["probe_id"]
    assert len(ids) == len(set(ids)) == 8
    assert not list((out / "data").glob(".*tmp")), "no half-written shard is left behind"


def test_unknown_model_and_foreign_out_dir_fail_clearly(tiny_paths, auditdm_home, tmp_path, image_folder):
    unknown = run_cli(
        ["audit", "--target", "gpt-vision-9", "--ensemble", "tiny-gemma3-seed1", "--auditor", "tiny-gemma3",
         "--images", str(image_folder), "--out", str(tmp_path / "o")],
        auditdm_home,
    )
    assert unknown.returncode == 2 and "unknown model 'gpt-vision-9'" in unknown.stderr
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    refused = run_cli(
        ["audit", "--target", "tiny-paligemma2", "--ensemble", "tiny-gemma3-seed1", "--auditor", "tiny-gemma3",
         "--images", str(image_folder), "--out", str(foreign)],
        auditdm_home,
    )
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_models_lists_registered_names(auditdm_home):
    listed = run_cli(["models"], auditdm_home)
    assert listed.returncode == 0 and "paligemma2-3b-448" in listed.stdout and "tiny-qwen2.5-vl" in listed.stdout
