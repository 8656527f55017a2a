"""The HTML leaderboard and the review page in a real headless Chromium (Debian's), read back."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from auditdm_eval.config import AuditConfig
from auditdm_eval.leaderboard import Score, collect, write_leaderboard
from auditdm_eval.runner import run_audit
from auditdm_eval.store import load_audit

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield instance
        instance.close()


def test_leaderboard_page_reads_right(browser, tmp_path):
    """One column per audit and harness, keyed by the audit's name; its failure rate beside it; the
    average over the benchmarks every model has, the others marked; every bar labelled, a zero
    visible as a zero, a missing result said to be missing."""
    runs = [ROOT / "leaderboard" / "runs" / "lmms-eval", ROOT / "leaderboard" / "runs" / "vlmeval"]
    folder = next(p for p in sorted((ROOT / "tasks").iterdir()) if p.is_dir())
    identity = json.loads((folder / "manifest.json").read_text())["identity"]
    target, reference, name = identity["target"], identity["references"][0], folder.name
    # one model with a benchmark the others lack
    scores = collect(runs) + [Score("tiny-qwen2.5-vl", "POPE", 50.0, "vlmeval", "made up for the page")]
    write_leaderboard(scores, tmp_path, base=target)
    page = browser.new_page()
    page.goto((tmp_path / "leaderboard.html").as_uri())
    headers = page.locator("#leaderboard thead th").all_inner_texts()
    audit = f"AuditDM {name}"
    assert headers == ["model", "POPE *", f"{audit} [lmms-eval]", f"{audit} [lmms-eval] failure rate",
                       f"{audit} [vlmeval]", f"{audit} [vlmeval] failure rate", "Avg (w/o MME)"], headers
    row = page.locator("#leaderboard tbody tr", has_text=reference)
    assert row.locator(f'td[data-benchmark="{audit} [lmms-eval]"]').inner_text() == "100.0 (+100.0)"
    assert row.locator(f'td[data-benchmark="{audit} [lmms-eval] failure rate"]').inner_text() == "0.0 (-100.0)"
    assert row.locator('td[data-benchmark="Avg (w/o MME)"]').inner_text() == "100.0 (+100.0)", "POPE is not averaged"
    note = page.locator("#note").inner_text()
    assert "not in the average: POPE" in note and "failure rate is the share of the audited target's discovered failures" in note
    bars = page.locator("#chart .bar")
    assert bars.count() == 3 * 6, "every model in every column of the chart"
    labels = bars.locator(".value").all_inner_texts()
    assert all(labels) and labels.count("no result") == 2, labels
    zero = page.locator(f'#chart figure[data-benchmark="{audit} [lmms-eval]"] .bar[data-model="{target}"]')
    assert zero.locator(".value").inner_text() == "0.0"
    assert zero.locator(".fill").bounding_box()["width"] >= 2, "a zero draws a visible stub"
    missing = page.locator('#chart figure[data-benchmark="POPE"] .bar[data-model="tiny-paligemma2"]')
    assert missing.locator(".value").inner_text() == "no result"
    assert missing.locator(".fill").bounding_box()["width"] == 0
    assert page.locator("img").evaluate("img => img.naturalWidth") > 300, "the plot is embedded and decodes"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "leaderboard.png"), full_page=True)
    page.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_review_page_labels_pairs_and_report_counts_them(browser, tiny_paths, auditdm_home, tmp_path):
    run_audit(AuditConfig(target="tiny-paligemma2", references=["tiny-gemma3-seed1"], auditor="tiny-gemma3",
                          images="skimage:astronaut,chelsea,coffee", out=str(tmp_path / "audit"), answer_max_new_tokens=3,
                          auditor_max_new_tokens=6, cache_dir=str(tmp_path / "cache"), progress=False))
    failures = [r for r in load_audit(tmp_path / "audit") if r["is_failure"]]
    assert len(failures) >= 2
    port = free_port()
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([str(Path(sys.executable).with_name("auditdm")), "review", str(tmp_path / "audit"), "--port", str(port)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        page = browser.new_page()
        page.goto(url)
        pairs = page.locator(".pair")
        assert pairs.count() == len(failures)
        first, second = pairs.nth(0), pairs.nth(1)
        assert first.locator(".target").inner_text() == failures[0]["target_answer"]
        assert first.locator("img").evaluate("img => img.naturalWidth") > 0, "the probe image is served"
        first.get_by_role("button", name="target failure").click()
        second.get_by_role("button", name="ambiguous").click()
        page.wait_for_function("document.querySelectorAll('.label')[1].textContent === 'ambiguous'")
        assert first.locator(".label").inner_text() == "target failure"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)
        page.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    labels = [json.loads(line) for line in (tmp_path / "audit" / "labels.jsonl").read_text().splitlines()]
    assert [l["label"] for l in labels] == ["target failure", "ambiguous"]
    assert labels[0]["probe_id"] == failures[0]["probe_id"]
    report = subprocess.run([str(Path(sys.executable).with_name("auditdm")), "report", str(tmp_path / "audit")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert "| target failure | 50.0% |" in report.stdout and "| ambiguous | 50.0% |" in report.stdout
