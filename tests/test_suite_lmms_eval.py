"""``auditdm eval --harness lmms-eval``: standard lmms-eval tasks, one per answer type, on fabricated
items placed in the datasets cache, answered through our adapters."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

pytest.importorskip("lmms_eval")

from auditdm_eval.harness.suite import plan_suite  # noqa: E402
from conftest import photo  # noqa: E402
from harness_data import place_hub_dataset  # noqa: E402

AUDITDM = str(Path(sys.executable).with_name("auditdm"))
N = 4


def fabricate(cache: Path) -> None:
    images = [photo(40 + i) for i in range(N)]
    pope = datasets.Dataset.from_dict(
        {"question_id": [str(i) for i in range(N)], "question": ["Is there a cat in the image?"] * N,
         "answer": ["yes", "no", "yes", "no"], "image": images, "category": ["adversarial"] * N}
    )
    seed = datasets.Dataset.from_dict(
        {"question_id": [str(i) for i in range(N)], "question": ["What is shown?"] * N, "choice_a": ["a cat"] * N,
         "choice_b": ["a dog"] * N, "choice_c": ["a car"] * N, "choice_d": ["a tree"] * N,
         "answer": ["A", "B", "C", "D"], "data_type": ["image"] * N, "image": [[im] for im in images]},
        features=datasets.Features({
            "question_id": datasets.Value("string"), "question": datasets.Value("string"),
            **{f"choice_{c}": datasets.Value("string") for c in "abcd"}, "answer": datasets.Value("string"),
            "data_type": datasets.Value("string"), "image": datasets.Sequence(datasets.Image()),
        }),
    )
    okvqa = datasets.Dataset.from_dict(
        {"question_id": [str(i) for i in range(N)], "question": ["What colour is it?"] * N,
         "answers": [["red"] * 10, ["blue"] * 10, ["green"] * 10, ["red"] * 10], "image": images}
    )
    coco = datasets.Dataset.from_dict(
        {"question_id": [f"val2017_{i:012d}.jpg" for i in range(N)], "id": list(range(N)),
         "question": ["Provide a one-sentence caption for the provided image."] * N,
         "answer": [["a red car on a road", "a car parked on the street"]] * N, "image": images}
    )
    place_hub_dataset(cache, "lmms-lab-encoder/POPE", {"test": pope})
    place_hub_dataset(cache, "lmms-lab-encoder/SEED-Bench", {"test": seed})
    place_hub_dataset(cache, "lmms-lab-encoder/OK-VQA", {"val2014": okvqa})
    place_hub_dataset(cache, "lmms-lab-encoder/COCO-Caption2017", {"val": coco})


def samples_of(out: Path, task: str) -> list[dict]:
    files = sorted(out.rglob(f"*samples_{task}.jsonl"))
    assert files, f"no logged samples for {task}"
    return [json.loads(line) for line in files[-1].read_text().splitlines()]


@pytest.mark.slow
def test_one_standard_benchmark_per_answer_type(tiny_paths, auditdm_home, tmp_path):
    cache = tmp_path / "datasets-cache"
    fabricate(cache)
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_DATASETS_CACHE": str(cache),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = tmp_path / "results"
    done = subprocess.run(
        [AUDITDM, "eval", "--suite", "paper16", "--harness", "lmms-eval", "--model", "tiny-qwen2.5-vl",
         "--benchmarks", "POPE,SEED-Bench-IMG,OK-VQA,COCO Caption", "--out", str(out), "--batch-size", "4"],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    files = sorted(out.rglob("*_results.json"))
    assert files, f"no results file (lmms-eval exits 0 even when a task fails):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(files[-1].read_text())["results"]
    assert set(plan_suite("paper16", "lmms-eval", ["POPE", "SEED-Bench-IMG", "OK-VQA", "COCO Caption"]).names) <= set(results)

    # yes/no: the harness's accuracy is what its rule gives on the logged predictions
    pope = samples_of(out, "pope")
    assert len(pope) == N
    expected = sum(s["filtered_resps"][0].lower().strip() == s["target"] for s in pope) / N
    assert results["pope"]["pope_accuracy,none"] == pytest.approx(expected)
    # multiple choice: first character of the answer against the letter
    seed = samples_of(out, "seedbench")
    expected = sum(s["filtered_resps"][0].strip()[:1].lower() == s["target"].lower() for s in seed) / N
    assert results["seedbench"]["seed_image,none"] == pytest.approx(expected)
    # open VQA and caption: the metrics are computed and finite
    assert len(samples_of(out, "ok_vqa_val2014")) == N
    assert 0.0 <= results["ok_vqa_val2014"]["exact_match,none"] <= 1.0
    assert math.isfinite(results["coco2017_cap_val"]["coco_CIDEr,none"])
    assert all(s["filtered_resps"][0] for s in samples_of(out, "coco2017_cap_val")), "our adapter answered every item"
    # the leaderboard reads the same files, under the paper's benchmark names
    from auditdm_eval.leaderboard import build_table, read_lmms_eval

    table, _ = build_table(read_lmms_eval(out))
    assert table.loc["tiny-qwen2.5-vl", "POPE"] == pytest.approx(100 * results["pope"]["pope_accuracy,none"])
    assert table.loc["tiny-qwen2.5-vl", "SEED-Bench-IMG"] == pytest.approx(100 * results["seedbench"]["seed_image,none"])
    assert table.loc["tiny-qwen2.5-vl", "COCO Caption"] == pytest.approx(100 * results["coco2017_cap_val"]["coco_CIDEr,none"])


@pytest.mark.slow
def test_eval_exits_nonzero_when_lmms_eval_wrote_nothing(tiny_paths, auditdm_home, tmp_path):
    """Offline, with no copy of POPE: lmms-eval logs the connection error and exits 0; auditdm eval
    reads the results, finds none, says so and exits 1."""
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_DATASETS_CACHE": str(tmp_path / "empty-cache"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [AUDITDM, "eval", "--suite", "paper16", "--harness", "lmms-eval", "--model", "tiny-qwen2.5-vl",
         "--benchmarks", "POPE", "--out", str(tmp_path / "results")],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-3000:]
    assert "lmms-eval wrote no results" in done.stderr


def test_lmms_eval_failures_reads_the_results(tmp_path):
    from auditdm_eval.harness.run_eval import lmms_eval_failures

    run = {"results": {"pope": {"pope_accuracy,none": 0.5}, "mme": {"mme_perception_score,none": float("nan")}},
           "n-samples": {"pope": {"effective": 4}, "mme": {"effective": 0}}}
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x_results.json").write_text(json.dumps(run))
    assert lmms_eval_failures(tmp_path, ["pope"], since=0) == []
    assert lmms_eval_failures(tmp_path, ["pope", "mme", "gqa"], since=0) == ["mme: produced no score (0 samples)", "gqa: no result"]
    assert lmms_eval_failures(tmp_path, ["pope"], since=10**12)[0].startswith("lmms-eval wrote no results")


def test_plan_needs_no_model_and_the_readme_shows_the_mapping(tmp_path):
    """`auditdm eval --suite paper16 --plan --harness vlmeval` as the README writes it; the README's
    table is the suite's own (RefCOCO runs in both harnesses, with the metric each computes)."""
    from auditdm_eval.harness.suite import PAPER16, markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    command = next(line for line in readme.splitlines() if line.startswith("auditdm eval") and "--plan" in line)
    args = command.split("#")[0].split()[2:]
    done = subprocess.run([AUDITDM, "eval", *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    refcoco = next(line for line in done.stdout.splitlines() if line.startswith("RefCOCO"))
    assert "-> RefCOCO [Average IoU" in refcoco
    assert markdown_table() in readme
    refcoco_row = next(b for b in PAPER16 if b.name == "RefCOCO")
    assert refcoco_row.lmms_eval and refcoco_row.vlmeval and refcoco_row.lmms_eval_metric and refcoco_row.vlmeval_metric
    assert "no VQAv2, OK-VQA or RefCOCO" not in readme
    missing = subprocess.run([AUDITDM, "eval", "--suite", "paper16", "--harness", "vlmeval"], capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and "--model is required" in missing.stderr
