"""The stage engines: output identical to the pre-redesign engine, distinct samples per image."""

import json
from collections import defaultdict
from pathlib import Path

from auditdm_eval.config import PRESETS, AuditConfig
from auditdm_eval.runner import run_audit
from auditdm_eval.store import load_audit

FINGERPRINT = Path(__file__).parent / "data" / "engine_fingerprint.json"
FIELDS = [
    "probe_id", "source_id", "mode", "image_sha256", "question", "provenance", "question_origin", "caption",
    "edit_command", "target_answer", "reference_answers", "consensus_answer", "agreement", "ensemble_agrees",
    "target_matches_consensus", "is_failure", "reward",
]


def fingerprint_rows(out: Path) -> list[dict]:
    rows = [{key: row[key] for key in FIELDS} for row in load_audit(out).remove_columns(["image", "source_image"])]
    for row in rows:
        row["agreement"] = round(float(row["agreement"]), 4)
    return sorted(rows, key=lambda row: row["probe_id"])


def fingerprint_configs(tmp_path: Path) -> dict[str, AuditConfig]:
    tiny = dict(PRESETS["tiny"])
    models = {key: tiny.pop(key) for key in ("target", "references", "auditor", "images")}
    return {
        "tiny_preset": AuditConfig(**models, out=str(tmp_path / "a"), cache_dir=str(tmp_path / "ca"), progress=False, **tiny),
        "question_two_references": AuditConfig(
            target="tiny-paligemma2", references=["tiny-gemma3-seed1", "tiny-qwen2.5-vl"], auditor="tiny-gemma3",
            images="skimage:astronaut,chelsea,coffee,rocket", out=str(tmp_path / "b"), cache_dir=str(tmp_path / "cb"),
            answer_max_new_tokens=5, auditor_max_new_tokens=10, batch_size=3, progress=False,
        ),
    }


def test_local_engine_writes_what_the_engine_before_the_redesign_wrote(tiny_paths, tmp_path):
    """Probe ids, auditor texts, rendered pixels, answers and verdicts of two fixed tiny-model runs
    (all three modes; a two-model ensemble) equal the fingerprint recorded before the stages were
    reshaped into batch callables."""
    expected = json.loads(FINGERPRINT.read_text())
    for name, config in fingerprint_configs(tmp_path).items():
        run_audit(config)
        assert fingerprint_rows(Path(config.out)) == expected[name], name


def test_probes_per_image_gives_distinct_probes(tiny_paths, tmp_path):
    config = AuditConfig(
        target="tiny-paligemma2", references=["tiny-gemma3-seed1"], auditor="tiny-gemma3", images="skimage:astronaut,coffee",
        out=str(tmp_path / "out"), modes=["question", "regenerate", "edit"], regenerate_model="tiny-flux",
        edit_model="tiny-flux-kontext", render_size=32, render_steps=2, answer_max_new_tokens=4, auditor_max_new_tokens=10,
        probes_per_image=3, cache_dir=str(tmp_path / "cache"), progress=False,
    )
    result = run_audit(config)
    rows = list(load_audit(result.out).remove_columns(["source_image"]))
    assert len(rows) + result.summary["issues"] == 2 * 3 * 3
    groups = defaultdict(list)
    for row in rows:
        groups[(row["source_id"], row["mode"])].append(row)
    issues = [json.loads(line) for line in (result.out / "issues.jsonl").read_text().splitlines()]
    assert all("returned an empty" in issue["message"] for issue in issues), "a random auditor may sample an empty text"
    assert len(groups) == 6 and sum(len(group) for group in groups.values()) >= 15
    for (source, mode), group in groups.items():
        texts = {(row["question"], row["caption"], row["edit_command"]) for row in group}
        assert len(texts) == len(group), f"{source} {mode}: samples collapsed into {texts}"
        assert len({row["probe_id"] for row in group}) == len(group)
        if mode != "question":
            assert len({row["image_sha256"] for row in group}) == len(group), f"{source} {mode}: one image reused"
    again = run_audit(config.with_overrides(out=str(tmp_path / "again")))
    assert again.answer_cache_misses == 0, "every sample is cached under its own seed"
    assert fingerprint_rows(again.out) == fingerprint_rows(result.out)
