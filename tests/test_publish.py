"""Publishing to the Hub without the network: the exact upload folder, the card, the upload call."""

import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
from huggingface_hub import DatasetCard

from auditdm_eval.config import AuditConfig
from auditdm_eval.harness.lmms_eval_tasks import dataset_reference
from auditdm_eval.publish import build_upload_folder, pull, push
from auditdm_eval.records import FEATURES
from auditdm_eval.runner import run_audit
from auditdm_eval.store import load_audit

SECRET = "hf_TESTSECRETdoNotLeak0123456789"


@pytest.fixture(scope="module")
def audit_dir(tiny_paths, tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    config = AuditConfig(
        target="tiny-paligemma2", references=["tiny-gemma3-seed1"], auditor="tiny-gemma3",
        images="skimage:astronaut,chelsea,coffee", out=str(root / "audit"), modes=["question", "edit"],
        edit_model="tiny-flux-kontext", render_size=32, render_steps=2, answer_max_new_tokens=4,
        auditor_max_new_tokens=8, batch_size=2, cache_dir=str(root / "cache"), progress=False,
    )
    run_audit(config)
    return root / "audit"


def test_upload_folder_loads_back_with_the_full_schema(audit_dir, tmp_path):
    folder = build_upload_folder(audit_dir, tmp_path / "hub", "me/audit", license="cc-by-4.0", reviewed_share=0.25)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "data", "manifest.json"]
    assert sorted(p.name for p in (folder / "data").iterdir()) == ["test-00000-of-00002.parquet", "test-00001-of-00002.parquet"]
    # what load_dataset("me/audit") does with these files (own cache: `datasets` keys a local folder by its name)
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
    assert list(loaded) == ["test"] and loaded["test"].features == FEATURES
    assert loaded["test"].num_rows == load_audit(audit_dir).num_rows == 6


def test_card_parses_and_carries_the_provenance(audit_dir, tmp_path):
    folder = build_upload_folder(audit_dir, tmp_path / "hub", "me/audit", license="cc-by-4.0", reviewed_share=0.25,
                                 auditor_checkpoint="me/auditor-step-1000")
    card = DatasetCard.load(folder / "README.md")
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-4.0" and "auditdm" in meta["tags"]
    assert meta["configs"][0]["data_files"][0] == {"split": "test", "path": "data/test-*.parquet"}
    text = card.text
    rows = load_audit(audit_dir)
    for needle in ("`tiny-paligemma2`", "`tiny-gemma3-seed1`", "me/auditor-step-1000", "tiny-flux-kontext",
                   "`exact`", "25.0% of the pairs", "Generate a single question that can be answered solely"):
        assert needle in text, needle
    assert f"{rows.num_rows} probes, {sum(rows['is_failure'])} discovered target failures" in text
    assert "| edit | 3 |" in text and "| question | 3 |" in text


def test_push_checks_the_boundary_and_never_writes_the_token(audit_dir, tmp_path, monkeypatch):
    import huggingface_hub

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs, self.token)

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = kwargs
        return type("Commit", (), {"commit_url": f"https://hub/{kwargs['repo_id']}/commit/1"})()

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    folder = build_upload_folder(audit_dir, tmp_path / "hub", "me/audit")
    url = push(folder, "me/audit", private=True)
    repo_id, kwargs, token = calls["create_repo"]
    assert repo_id == "me/audit" and kwargs["repo_type"] == "dataset" and kwargs["private"] is True
    assert token is None, "the token is left to huggingface_hub (env or login), not copied around"
    assert calls["upload_folder"]["repo_type"] == "dataset" and calls["upload_folder"]["folder_path"] == str(folder)
    assert url.endswith("/commit/1")
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), f"token leaked into {path}"


def test_cli_push_dry_run_prints_no_token_and_pull_reads_back(audit_dir, tmp_path, auditdm_home):
    env = {**os.environ, "HF_TOKEN": SECRET, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    auditdm = str(Path(sys.executable).with_name("auditdm"))
    done = subprocess.run([auditdm, "push", str(audit_dir), "me/audit", "--private", "--dry-run", "--folder", str(tmp_path / "hub")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    pulled = pull(str(tmp_path / "hub"), tmp_path / "pulled")
    assert load_audit(pulled).num_rows == 6
    assert dataset_reference(str(pulled))["dataset_path"] == "parquet", "harness tasks read a pulled dataset"
    assert dataset_reference("me/audit") == {"dataset_path": "me/audit"}, "or the Hub id directly"


def test_reviewed_share_must_be_a_fraction(audit_dir, tmp_path):
    with pytest.raises(ValueError, match="between 0 and 1"):
        build_upload_folder(audit_dir, tmp_path / "hub", "me/audit", reviewed_share=81.3)
