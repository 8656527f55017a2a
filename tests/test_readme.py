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
def test_readme_harness_commands_work_as_written(tiny_paths, auditdm_home, tmp_path):
    pytest.importorskip("lmms_eval")
    pytest.importorskip("vlmeval")
    (tmp_path / ".venv").symlink_to(Path(sys.prefix))
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "LMUData": str(tmp_path / "LMUData"),
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    (tmp_path / "LMUData").mkdir()
    audit = commands(bash_blocks()[0])[0].split("&&")[-1].strip()  # the run part of command 1
    harness_block = next(block for block in bash_blocks() if "write-tasks" in block)
    for command in [audit, *commands(harness_block)]:
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
    lmms = json.loads(next((tmp_path / "lmms-results").rglob("*_results.json")).read_text())["results"]
    assert lmms["auditdm_demo"]["accuracy,none"] == 1.0, "the reference agrees with itself"
    vlm = pd.read_csv(next((tmp_path / "vlmeval-results").rglob("*_acc.csv"))).set_index("split")
    assert vlm.loc["overall", "accuracy"] == 1.0
    assert vlm.loc["overall", "n"] == 18, "all probes of the three modes are answerable with one reference"
