"""VLMEvalKit's real inference + evaluate path, offline, with our model and dataset classes."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import FAILURE_TYPES, make_typed_audit, photo

pytest.importorskip("vlmeval")

from auditdm_eval.config import AuditConfig  # noqa: E402
from auditdm_eval.runner import run_audit  # noqa: E402
from auditdm_eval.store import load_audit  # noqa: E402
from harness_data import place_lmudata_tsv  # noqa: E402

BIN = Path(sys.executable).parent
TYPES = FAILURE_TYPES


def env_for(home: Path, lmudata: Path) -> dict:
    lmudata.mkdir(parents=True, exist_ok=True)
    return {**os.environ, "AUDITDM_HOME": str(home), "LMUData": str(lmudata), "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def audited(tiny_paths, tmp_path_factory):
    root = tmp_path_factory.mktemp("vlmeval")
    make_typed_audit(root, tiny_paths, first_seed=60)
    return root


def scores(work: Path, model: str, dataset: str) -> pd.DataFrame:
    path = work / model / f"{model}_{dataset}_acc.csv"
    assert path.exists(), f"VLMEvalKit wrote no {path.name}: {sorted(p.name for p in work.rglob('*'))}"
    return pd.read_csv(path).set_index("split")


@pytest.mark.slow
def test_audited_dataset_in_vlmeval_scores_the_consensus_model_above_the_target(audited, auditdm_home):
    env = env_for(auditdm_home, audited / "LMUData")
    work = audited / "work"
    for model in ("tiny-gemma3-seed1", "tiny-paligemma2"):
        done = subprocess.run([str(BIN / "auditdm-vlmeval"), "--model", model, "--data", str(audited / "audit"), "--work-dir", str(work)],
                              env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    right = scores(work, "tiny-gemma3-seed1", "AuditDM_tiny_paligemma2")  # named after the audit: its target
    wrong = scores(work, "tiny-paligemma2", "AuditDM_tiny_paligemma2")
    assert right.loc["overall", "accuracy"] == 1.0
    assert wrong.loc["overall", "accuracy"] < right.loc["overall", "accuracy"]
    assert wrong.loc["overall", "failure_rate"] == 1.0, "the target fails its own discovered failures again"
    rows = load_audit(audited / "audit")
    for failure_type in TYPES:
        subset = [r for r in rows if r["failure_type"] == failure_type]
        expected = sum(not r["is_failure"] for r in subset) / len(subset)
        assert wrong.loc[f"failure_type={failure_type}", "accuracy"] == pytest.approx(expected)
        assert wrong.loc[f"failure_type={failure_type}", "n"] == len(subset)


def test_vlmeval_loop_hands_our_model_batches_and_gets_the_audits_answers(audited, auditdm_home, tmp_path, monkeypatch):
    """VLMEvalKit's own inference loop asks for one item at a time; our model answers the items
    ahead in batches of batch_size, with the texts the audit stored for that model."""
    from vlmeval.config import supported_VLM
    from vlmeval.dataset import build_dataset
    from vlmeval.inference import infer_data_job

    from auditdm_eval.harness.vlmeval_launcher import register

    monkeypatch.setenv("LMUData", str(tmp_path / "LMUData"))
    monkeypatch.setenv("PRED_FORMAT", "tsv")
    (tmp_path / "LMUData").mkdir()
    batch_size = 3
    model_names, data_names = register(["tiny-paligemma2"], [str(audited / "audit")], {"batch_size": batch_size}, False)
    model = supported_VLM[model_names[0]]()
    calls = []
    generate = model.adapter.generate
    monkeypatch.setattr(model.adapter, "generate", lambda requests: calls.append(len(requests)) or generate(requests))
    dataset = build_dataset(data_names[0])
    (tmp_path / "work").mkdir()
    infer_data_job(model, str(tmp_path / "work"), model_names[0], dataset)
    items = len(dataset.data)
    assert items > batch_size
    assert calls == [batch_size] * (items // batch_size) + ([items % batch_size] if items % batch_size else []), calls
    predictions = pd.read_csv(tmp_path / "work" / f"{model_names[0]}_{data_names[0]}.tsv", sep="\t")
    stored = {r["probe_id"]: r["target_answer"] for r in load_audit(audited / "audit")}
    assert all(str(p) == stored[probe] for probe, p in zip(predictions["probe_id"], predictions["prediction"].fillna(""))), \
        "the audited target answers as it did in the audit"


def yes_no(text: str) -> str:
    words = set(text.lower().replace(".", " ").replace(",", " ").split())
    if "yes" in words and "no" not in words:
        return "Yes"
    if "no" in words and "yes" not in words:
        return "No"
    return "Unknown"


@pytest.mark.slow
def test_one_standard_vlmeval_dataset_per_answer_type(tiny_paths, auditdm_home, tmp_path):
    lmudata = tmp_path / "LMUData"
    n = 4
    images = [photo(80 + i) for i in range(n)]
    place_lmudata_tsv(lmudata, "POPE", [
        {"index": i, "image": images[i], "question": "Is there a cat in the image?", "answer": ["Yes", "No"][i % 2],
         "category": "adversarial"} for i in range(n)])
    place_lmudata_tsv(lmudata, "SEEDBench_IMG", [
        {"index": i, "image": images[i], "question": "What is shown?", "A": "a cat", "B": "a dog", "C": "a car",
         "D": "a tree", "answer": "ABCD"[i], "category": "Scene Understanding"} for i in range(n)])
    place_lmudata_tsv(lmudata, "DocVQA_VAL", [
        {"index": i, "image": images[i], "question": "What is the title?", "answer": str(["invoice"])} for i in range(n)])
    place_lmudata_tsv(lmudata, "COCO_VAL", [
        {"index": i, "image": images[i], "question": "Describe the image.", "answer": str(["a red car on a road", "a car"])}
        for i in range(n)])
    work = tmp_path / "work"
    done = subprocess.run(
        [str(BIN / "auditdm"), "eval", "--suite", "paper16", "--harness", "vlmeval", "--model", "tiny-qwen2.5-vl",
         "--benchmarks", "POPE,SEED-Bench-IMG,DocVQA,COCO Caption", "--out", str(work), "--local-data"],
        env=env_for(auditdm_home, lmudata), capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    model = "tiny-qwen2.5-vl"
    predictions = {name: pd.read_csv(work / model / f"{model}_{name}.tsv", sep="\t") for name in ("POPE", "SEEDBench_IMG", "DocVQA_VAL", "COCO_VAL")}
    assert all(len(p) == n and p["prediction"].notna().all() for p in predictions.values()), "our adapter answered every item"
    # yes/no: accuracy is the share of predictions whose yes/no equals the answer
    pope = pd.read_csv(work / model / f"{model}_POPE_score.csv")
    expected = 100 * sum(yes_no(str(p)) == a for p, a in zip(predictions["POPE"]["prediction"], predictions["POPE"]["answer"])) / n
    assert pope["acc"].iloc[0] == pytest.approx(expected)
    # multiple choice and open VQA: an overall score in range; caption: BLEU/CIDEr computed
    seed = pd.read_csv(work / model / f"{model}_SEEDBench_IMG_acc.csv")
    assert 0 <= float(seed["Overall"].iloc[0]) <= 100
    doc = pd.read_csv(work / model / f"{model}_DocVQA_VAL_acc.csv")
    assert 0 <= float(doc["Overall"].iloc[0]) <= 100
    coco = json.loads((work / model / f"{model}_COCO_VAL_score.json").read_text())
    assert math.isfinite(coco["CIDEr"]) and len(coco["Bleu"]) == 4 and "ROUGE_L" in coco
    # the leaderboard reads the same files, under the paper's benchmark names
    from auditdm_eval.leaderboard import build_table, read_vlmeval

    table, _ = build_table(read_vlmeval(work))
    assert table.loc[model, "POPE"] == pytest.approx(expected)
    assert table.loc[model, "COCO Caption"] == pytest.approx(coco["CIDEr"])
    assert table.loc[model, "DocVQA"] == pytest.approx(float(doc["Overall"].iloc[0]))


@pytest.mark.slow
def test_launcher_exits_nonzero_when_vlmeval_swallows_a_dataset_error(tiny_paths, auditdm_home, tmp_path):
    """Random references never agree: the audited set has no answerable probe. VLMEvalKit logs the
    dataset's error and exits 0; the launcher reads its status.json, names it and exits 1."""
    images = tmp_path / "images"
    images.mkdir()
    photo(90, (64, 56)).save(images / "one.png")
    run_audit(AuditConfig(
        target="tiny-paligemma2", references=["tiny-gemma3-seed1", "tiny-qwen2.5-vl"], auditor="tiny-gemma3",
        images=str(images), out=str(tmp_path / "audit"), answer_max_new_tokens=5, auditor_max_new_tokens=10,
        cache_dir=str(tmp_path / "cache"), progress=False,
    ))
    assert not any(load_audit(tmp_path / "audit")["ensemble_agrees"])
    done = subprocess.run([str(BIN / "auditdm-vlmeval"), "--model", "tiny-gemma3", "--data", str(tmp_path / "audit"), "--work-dir", str(tmp_path / "work")],
                          env=env_for(auditdm_home, tmp_path / "LMUData"), capture_output=True, text=True, timeout=600)
    assert done.returncode == 1
    assert "AuditDM_tiny_paligemma2 failed" in done.stderr and "agreed on" in done.stderr


@pytest.mark.slow
def test_refcoco_runs_in_vlmeval_and_the_leaderboard_reads_its_mean_iou(tiny_paths, auditdm_home, tmp_path):
    """The plan maps RefCOCO to VLMEvalKit's RefCOCO: it runs there with our adapter, VLMEvalKit
    scores boxes, and the leaderboard reads the metric the suite names (mean IoU)."""
    from auditdm_eval.harness.suite import PAPER16
    from auditdm_eval.leaderboard import build_table, read_vlmeval

    lmudata = tmp_path / "LMUData"
    n = 4
    place_lmudata_tsv(lmudata, "RefCOCO", [
        {"index": i, "image": photo(120 + i, (64, 48)), "question": "Please provide the bounding box of: the left part.",
         "answer": str([0, 0, 32, 48]), "width": 64, "height": 48, "split": "RefCOCO_val"} for i in range(n)])
    work = tmp_path / "work"
    done = subprocess.run(
        [str(BIN / "auditdm"), "eval", "--suite", "paper16", "--harness", "vlmeval", "--model", "tiny-qwen2.5-vl",
         "--benchmarks", "RefCOCO", "--out", str(work), "--local-data"],
        env=env_for(auditdm_home, lmudata), capture_output=True, text=True, timeout=900, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    model = "tiny-qwen2.5-vl"
    detail = pd.read_csv(next((work / model).glob(f"{model}_RefCOCO_detail.*")), sep=None, engine="python")
    assert len(detail) == n and "iou" in detail
    table, _ = build_table(read_vlmeval(work))
    assert table.loc[model, "RefCOCO"] == pytest.approx(100 * detail["iou"].mean())
    assert "IoU" in next(b for b in PAPER16 if b.name == "RefCOCO").vlmeval_metric
