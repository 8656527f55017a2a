"""auditdm report: per-type failure rates, the two-target chart, Table 3 from review labels."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from auditdm_eval.records import Answer, AuditRecord, Probe, Verdict
from auditdm_eval.report import make_report, read_labels, write_types
from auditdm_eval.store import AuditStore, load_audit
from conftest import photo

QUESTIONS = {  # question -> its type under the rules
    "How many dogs are there?": "counting",
    "What colour is the car?": "color recognition",
    "What time does the clock show?": "clock reading",
}


def audit_dir(root: Path, target: str, failures: dict[str, list[bool]]) -> Path:
    """An audit output with, per question, one probe per flag (True = discovered failure)."""
    store = AuditStore(root)
    store.open({"target": target, "references": ["ref"]})
    records = []
    for question, flags in failures.items():
        for failed in flags:
            image = photo(len(records))
            probe = Probe(f"{target}-{len(records)}", f"s{len(records)}", "question", image, image, question, "original", "auditor")
            verdict = Verdict("x", ["y"], "y", 1.0, True, not failed, failed, float(failed))
            target_answer = Answer(target, "x" if failed else "y", "x" if failed else "y")
            records.append(AuditRecord(probe, target_answer, [Answer("ref", "y", "y")], verdict))
    store.write_shard(records)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["identity"] = {"target": target, "references": ["ref"]}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@pytest.fixture
def two_targets(tmp_path):
    small = audit_dir(tmp_path / "small", "model-3b", {
        "How many dogs are there?": [True, False, False, False],  # 25%
        "What colour is the car?": [True, True, False, False],  # 50%
        "What time does the clock show?": [True, True, True, False],  # 75%
    })
    large = audit_dir(tmp_path / "large", "model-28b", {
        "How many dogs are there?": [True, True, True, False],  # 75%
        "What colour is the car?": [True, True, False, False],  # 50%
        "What time does the clock show?": [True, False, False, False],  # 25%
    })
    return small, large


def test_per_type_rates_and_the_normalised_comparison(two_targets, tmp_path):
    small, large = two_targets
    report = make_report(small, tmp_path / "report", compare=large)
    rates = report.rates["failure_rate"].to_dict()
    assert rates == {"clock reading": 0.75, "color recognition": 0.5, "counting": 0.25}
    table = report.comparison
    assert list(table.index) == ["clock reading", "color recognition", "counting"], "3B's worst first"
    assert table.loc["clock reading"].tolist() == pytest.approx([75.0, 25.0])
    assert table.loc["color recognition"].tolist() == pytest.approx([50.0, 50.0])
    assert table.sum(axis=1).tolist() == pytest.approx([100.0] * 3)
    for plot in report.plots:
        with Image.open(plot) as image:
            assert image.format == "PNG" and image.width > 300
    text = report.markdown.read_text()
    assert "| clock reading | 4 | 3 | 75.0% |" in text and "| clock reading | 75.0 | 25.0 |" in text


def test_review_labels_give_table_3(two_targets, tmp_path):
    small, _ = two_targets
    labels = ["target failure"] * 6 + ["ambiguous"] * 3 + ["unanswerable"]
    with (small / "labels.jsonl").open("w") as handle:
        handle.write(json.dumps({"probe_id": "model-3b-0", "label": "unanswerable"}) + "\n")  # changed below: last wins
        for i, label in enumerate(labels):
            handle.write(json.dumps({"probe_id": f"model-3b-{i}", "label": label}) + "\n")
    assert read_labels(small / "labels.jsonl")["model-3b-0"] == "target failure"
    review = make_report(small, tmp_path / "r").review
    assert review["percentage"].tolist() == pytest.approx([60.0, 30.0, 10.0])


def test_types_are_written_into_the_shards(two_targets):
    small, _ = two_targets
    assert write_types(small) == 12
    types = load_audit(small)["failure_type"]
    assert types.count("clock reading") == 4 and types.count("counting") == 4


def test_report_cli(two_targets, tmp_path, auditdm_home):
    small, large = two_targets
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([str(Path(sys.executable).with_name("auditdm")), "report", str(small), "--compare", str(large),
                           "--out", str(tmp_path / "out"), "--write-types"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "typed 12 probes" in done.stdout and (tmp_path / "out" / "comparison.png").exists()
