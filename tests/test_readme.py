"""The README's commands, run as written."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)


def commands(block: str) -> list[str]:
    return [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_opens_with_install_run_and_test_commands():
    first = commands(bash_blocks()[0])
    assert first[0].startswith("python3 -m venv .venv && .venv/bin/pip install -e") and "auditdm audit" in first[0]
    assert first[1] == ".venv/bin/python -m pytest -q"
    ci = (README.parent / ".ci" / "run").read_text()
    assert first[1] in ci, ".ci/run calls the README's test command"


@pytest.mark.slow
def test_readme_harness_commands_work_as_written(world_auditor, auditdm_home, tmp_path):
    """In a fresh clone: the README's audit, then its harness commands as written. Every probe is
    scored once by each harness; the names come from what the audit wrote."""
    pytest.importorskip("lmms_eval")
    pytest.importorskip("vlmeval")
    from auditdm_eval import audited
    from auditdm_eval.harness.identity import identify
    from auditdm_eval.store import load_audit
    from harness_data import fresh_checkout

    clone = fresh_checkout(tmp_path / "clone")
    (clone / ".venv").symlink_to(Path(sys.prefix))
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "LMUData": str(tmp_path / "LMUData"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": f"{clone / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    (tmp_path / "LMUData").mkdir()
    audit = " && ".join(part.strip() for part in commands(bash_blocks()[0])[0].split("&&") if "auditdm " in part)  # command 1's run
    harness_block = next(block for block in bash_blocks() if "write-tasks" in block)
    leaderboard = next(c for block in bash_blocks() for c in commands(block) if c.startswith("auditdm leaderboard"))
    for command in [audit, *commands(harness_block), leaderboard.split("#")[0]]:
        done = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"

    out = clone / "auditdm-out"
    identity = identify(out)
    rows = [r for r in load_audit(out) if audited.is_answerable(r)]
    manifest = json.loads((out / "manifest.json").read_text())
    lmms_command = next(c for c in commands(harness_block) if "lmms-eval" in c)
    agrees = re.search(r"pretrained=([^,\s]+)", lmms_command).group(1) in manifest["identity"]["references"]
    # write-tasks wrote the audit's folder into the clone's tasks/, where lmms-eval looked
    assert (clone / "tasks" / identity.name / f"_auditdm_{identity.name}.yaml").exists()
    run = json.loads(next((clone / "lmms-results").rglob("*_results.json")).read_text())
    groups = {t for t in run["results"] if t.startswith("auditdm_")}
    assert groups == {f"auditdm_{p.name}" for p in (clone / "tasks").iterdir() if p.is_dir()}, "the glob ran every audit in tasks/"
    scored = sum(n["effective"] for task, n in run["n-samples"].items() if task.startswith(f"auditdm.{identity.name}."))
    assert scored == len(rows), "lmms-eval scored every probe once"
    if agrees:
        assert run["results"][f"auditdm_{identity.name}"]["accuracy,none"] == 1.0, "the reference agrees with itself"
    predictions = pd.read_csv(next((clone / "vlmeval-results").rglob("*_AuditDM_*.tsv")), sep="\t")
    assert sorted(predictions["probe_id"]) == sorted(r["probe_id"] for r in rows), "VLMEvalKit scored every probe once"
    vlm = pd.read_csv(next((clone / "vlmeval-results").rglob("*_acc.csv"))).set_index("split")
    assert vlm.loc["overall", "n"] == len(rows)
    if agrees:
        assert vlm.loc["overall", "accuracy"] == 1.0
    # the leaderboard: one audit, one column per harness, whatever the folders were called
    board = (clone / "board" / "leaderboard.md").read_text()
    header = next(line for line in board.splitlines() if line.startswith("| model |"))
    assert f"AuditDM {identity.name} [lmms-eval] |" in header and f"AuditDM {identity.name} [vlmeval] |" in header
    assert header.count(f"AuditDM {identity.name}") == 4, header
