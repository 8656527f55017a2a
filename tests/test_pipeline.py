"""End-to-end audits on tiny random models: schema, failure semantics, cache, resume, bad input."""

import json

import datasets

import pytest
from PIL import Image

from auditdm_eval.config import AuditConfig
from auditdm_eval.records import FEATURES
from auditdm_eval.runner import ConfigError, run_audit
from auditdm_eval.store import RunMismatchError, load_audit
from conftest import photo


def config(tmp_path, images, **overrides):
    base = dict(
        target="tiny-paligemma2",
        references=["tiny-gemma3-seed1", "tiny-qwen2.5-vl"],
        auditor="tiny-gemma3",
        images=str(images),
        out=str(tmp_path / "out"),
        modes=["question"],
        regenerate_model="tiny-flux",
        edit_model="tiny-flux-kontext",
        render_size=32,
        render_steps=2,
        answer_max_new_tokens=5,
        auditor_max_new_tokens=10,
        batch_size=2,
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    base.update(overrides)
    return AuditConfig(**base)


def test_all_three_modes_write_the_full_schema(tiny_paths, tmp_path, image_folder):
    result = run_audit(config(tmp_path, image_folder, modes=["question", "regenerate", "edit"]))
    dataset = load_audit(result.out)
    assert dataset.features == FEATURES
    assert dataset.num_rows + result.summary["issues"] == 9
    rows = list(dataset)
    by_mode = {mode: [r for r in rows if r["mode"] == mode] for mode in ("question", "regenerate", "edit")}
    assert all(by_mode.values()), f"every mode produced probes: { {k: len(v) for k, v in by_mode.items()} }"
    for row in by_mode["question"]:
        assert row["provenance"] == "original" and row["caption"] is None
        assert row["source_image"] is None, "an original image is stored once, under image"
    originals = {p.name: p.read_bytes() for p in image_folder.iterdir()}
    raw = load_audit(result.out).cast_column("image", datasets.Image(decode=False))
    for row in raw:
        if row["mode"] == "question":
            assert row["image"]["bytes"] == originals[row["source_id"]], "the file's own bytes, not a re-encoding"
    for row in by_mode["regenerate"]:
        assert row["provenance"] == "regenerated" and row["caption"] and row["image"].size == (32, 32)
        assert row["source_image"].size == Image.open(image_folder / row["source_id"]).size
        assert row["renderer_id"] == "tiny-flux"
    for row in by_mode["edit"]:
        assert row["provenance"] == "edited" and row["edit_command"] and row["image"].size == (32, 32)
    for row in rows:
        assert row["question"] and row["question_origin"] == "auditor"
        assert row["reference_models"] == ["tiny-gemma3-seed1", "tiny-qwen2.5-vl"]
        assert len(row["reference_answers"]) == 2 and row["target_model"] == "tiny-paligemma2"
    summary = json.loads((result.out / "summary.json").read_text())
    assert summary["probes"] == dataset.num_rows


def test_failure_flag_follows_the_ensemble_and_the_target(tiny_paths, tmp_path, image_folder):
    """An ensemble of one model's weights under two names always agrees; failures are then
    exactly the probes where the target's normalised answer differs from theirs."""
    twin = str(tiny_paths["twin-gemma3"])
    result = run_audit(config(tmp_path, image_folder, references=["tiny-gemma3-seed1", twin]))
    rows = list(load_audit(result.out))
    assert rows
    for row in rows:
        refs = row["reference_answers_normalized"]
        assert refs[0] == refs[1]
        assert row["ensemble_agrees"] is bool(refs[0])
        expected = bool(refs[0]) and bool(row["target_answer_normalized"]) and row["target_answer_normalized"] != refs[0]
        assert row["is_failure"] is expected
        assert row["reward"] == (1.0 if expected else 0.0)


def test_model_comparison_mode_with_one_reference(tiny_paths, tmp_path, image_folder):
    result = run_audit(config(tmp_path, image_folder, references=["tiny-qwen2.5-vl"]))
    for row in list(load_audit(result.out)):
        assert row["agreement"] == (1.0 if row["reference_answers_normalized"][0] else 0.0)
        assert row["consensus_answer"] == (row["reference_answers"][0] or None)


def test_warm_cache_and_new_target_reuse_answers(tiny_paths, tmp_path, image_folder):
    first = run_audit(config(tmp_path, image_folder, out=str(tmp_path / "a")))
    assert first.answer_cache_hits == 0
    again = run_audit(config(tmp_path, image_folder, out=str(tmp_path / "b")))
    assert again.answer_cache_misses == 0, "a rerun asks no model anything"
    assert load_audit(again.out)["target_answer"] == load_audit(first.out)["target_answer"]
    new_target = run_audit(config(tmp_path, image_folder, out=str(tmp_path / "c"), target="tiny-gemma3"))
    probes = new_target.stats.written
    assert new_target.answer_cache_misses == probes, "only the new target's answers are computed"


def test_resume_skips_what_is_on_disk_and_duplicates_nothing(tiny_paths, tmp_path, image_folder):
    partial = run_audit(config(tmp_path, image_folder, limit=1))
    assert partial.stats.written == 1
    full = run_audit(config(tmp_path, image_folder))
    assert full.resumed and full.stats.skipped_done == 1 and full.stats.written == 2
    ids = load_audit(full.out)["probe_id"]
    assert len(ids) == len(set(ids)) == 3


def test_another_run_in_the_same_out_dir_is_refused(tiny_paths, tmp_path, image_folder):
    run_audit(config(tmp_path, image_folder, limit=1))
    with pytest.raises(RunMismatchError, match="prompt_variant"):
        run_audit(config(tmp_path, image_folder, limit=1, prompt_variant="baseline"))
    assert load_audit(tmp_path / "out").num_rows == 1


@pytest.mark.parametrize(
    "references, message",
    [
        (["tiny-paligemma2", "tiny-gemma3-seed1"], "inside its own ensemble"),
        ([], "no reference model"),
        (["tiny-qwen2.5-vl", "tiny-qwen2.5-vl"], "twice"),
    ],
)
def test_invalid_ensembles_are_refused_before_loading(tiny_paths, tmp_path, image_folder, references, message):
    with pytest.raises(ConfigError, match=message):
        run_audit(config(tmp_path, image_folder, references=references))
    assert not (tmp_path / "out").exists(), "nothing is written for a refused config"


def test_target_in_ensemble_by_path_is_refused(tiny_paths, tmp_path, image_folder):
    with pytest.raises(ConfigError, match="inside its own ensemble"):
        run_audit(config(tmp_path, image_folder, references=[str(tiny_paths["tiny-paligemma2"]), "tiny-gemma3-seed1"]))


def test_bad_images_are_reported_and_the_run_goes_on(tiny_paths, tmp_path, image_folder):
    photo(9, (12, 12)).save(image_folder / "tiny.png")
    (image_folder / "broken.png").write_bytes(b"\x89PNG garbage")
    result = run_audit(config(tmp_path, image_folder))
    issues = (result.out / "issues.jsonl").read_text()
    assert "tiny.png" in issues and "12x12" in issues
    assert "broken.png" in issues and "cannot read image" in issues
    assert load_audit(result.out).num_rows == 3


class Flaky:
    """Wraps a real adapter; raises for requests whose image is narrower than 70 px."""

    def __init__(self, inner):
        self.inner, self.model_id, self.fingerprint = inner, inner.model_id, inner.fingerprint + "-flaky"

    def generate(self, requests):
        if any(r.images and r.images[0].width < 70 for r in requests):
            raise RuntimeError("simulated CUDA error")
        return self.inner.generate(requests)


class Silent:
    """Wraps a real adapter; returns whitespace, as a broken auditor would."""

    def __init__(self, inner):
        self.inner, self.model_id, self.fingerprint = inner, inner.model_id, inner.fingerprint + "-silent"

    def generate(self, requests):
        return ["  \n" for _ in requests]


@pytest.fixture
def wrapped_models(tiny_paths):
    """Registered names whose backend wraps a real tiny checkpoint in Flaky or Silent."""
    from model_adapters import ModelSpec, TransformersVLM, register_backend, register_model

    for wrapper in (Flaky, Silent):
        kind = wrapper.__name__.lower()
        register_backend(kind, lambda path, wrapper=wrapper, **kwargs: wrapper(TransformersVLM(path, **kwargs)))
    register_model(ModelSpec("flaky-qwen2.5-vl", path=str(tiny_paths["tiny-qwen2.5-vl"]), backend="flaky"))
    register_model(ModelSpec("silent-gemma3", path=str(tiny_paths["tiny-gemma3"]), backend="silent"))


def test_a_model_that_raises_costs_only_its_probes(tiny_paths, tmp_path, image_folder, wrapped_models):
    result = run_audit(config(tmp_path, image_folder, references=["tiny-gemma3-seed1", "flaky-qwen2.5-vl"]))
    rows = list(load_audit(result.out))
    assert len(rows) == 3
    failed = [r for r in rows if r["source_id"] == "img0.png"][0]  # 64 px wide: the flaky model raises
    assert failed["ensemble_agrees"] is False and failed["is_failure"] is False
    assert failed["reference_answers"][1] == ""
    issues = [json.loads(line) for line in (result.out / "issues.jsonl").read_text().splitlines()]
    assert any(i["stage"] == "answer:flaky-qwen2.5-vl" and "simulated CUDA error" in i["message"] for i in issues)


def test_empty_auditor_output_is_an_issue_with_the_fix(tiny_paths, tmp_path, image_folder, wrapped_models):
    result = run_audit(config(tmp_path, image_folder, auditor="silent-gemma3"))
    assert not result.stats.written
    issues = [json.loads(line) for line in (result.out / "issues.jsonl").read_text().splitlines()]
    assert len(issues) == 3 and all("empty question" in i["message"] and "--auditor-max-new-tokens" in i["fix"] for i in issues)


def test_source_questions_are_used_on_altered_images(tiny_paths, tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [photo(5), photo(6)], "question": ["what colour is the sky?", "is it raining?"]})
    ds.save_to_disk(str(tmp_path / "pool"))
    result = run_audit(config(tmp_path, f"hf:{tmp_path / 'pool'}", modes=["edit"], question_column="question"))
    rows = list(load_audit(result.out))
    assert [r["question"] for r in rows] == ["what colour is the sky?", "is it raining?"]
    assert all(r["question_origin"] == "dataset" and r["edit_command"] for r in rows)


def test_grpo_reward_function_runs_the_audit_stages(tiny_paths, tmp_path):
    from auditdm_eval.plan import outcomes
    from auditdm_eval.records import SourceImage
    from auditdm_eval.reward import AuditReward
    from auditdm_eval.runner import build_plan
    from auditdm_eval.stages import run_chain

    twin = str(tiny_paths["twin-gemma3"])
    plan = build_plan(config(tmp_path, "unused", references=["tiny-gemma3-seed1", twin]))
    reward = AuditReward(plan, mode="question")
    images = [photo(1), photo(2), photo(3)]
    completions = [[{"role": "assistant", "content": "what colour is the car?"}], "how many dogs?", ""]
    rewards = reward(prompts=["p"] * 3, completions=completions, image=images)
    assert len(rewards) == 3 and rewards[2] == 0.0, "an empty completion earns nothing"
    assert reward.last[2].failure.stage == "policy", "and is marked as the policy's failure, not a silent zero"
    assert reward.__name__ == "auditdm_question_disagreement"
    # each reward is the verdict an audit records for the same question-image pair
    for i, question in enumerate(["what colour is the car?", "how many dogs?"]):
        item = plan.work_item(SourceImage(f"row{i}", images[i]), "question", sample=i).but(question=question)
        records, _ = outcomes(run_chain(reward.stages, [item]), plan.run_id)
        assert rewards[i] == records[0].verdict.reward
