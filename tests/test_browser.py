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
from auditdm_eval.leaderboard import make_leaderboard
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


def test_leaderboard_page_renders_the_table(browser, tmp_path):
    runs = [ROOT / "leaderboard" / "runs" / "lmms-eval", ROOT / "leaderboard" / "runs" / "vlmeval"]
    make_leaderboard(runs, tmp_path, base="tiny-paligemma2")
    page = browser.new_page()
    page.goto((tmp_path / "leaderboard.html").as_uri())
    headers = page.locator("#leaderboard thead th").all_inner_texts()
    assert headers[:3] == ["model", "AuditDM demo [lmms-eval]", "AuditDM demo [vlmeval]"]
    row = page.locator("#leaderboard tbody tr", has_text="tiny-gemma3-seed1")
    assert row.locator('td[data-benchmark="AuditDM demo [lmms-eval]"]').inner_text() == "100.0 (+100.0)"
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
