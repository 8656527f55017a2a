"""Rectification: data mixing, recipes on tiny models (LoRA and full), the paper's configs."""

import math
import os
import subprocess
import sys
from pathlib import Path

import datasets
import pytest

pytest.importorskip("trl")

from auditdm_eval.config import AuditConfig  # noqa: E402
from auditdm_eval.rectify.mixing import TrainPair, deduplicate, mix, pairs_from_audit, pairs_from_original  # noqa: E402
from auditdm_eval.rectify.train import Recipe, run_recipe  # noqa: E402
from auditdm_eval.runner import run_audit  # noqa: E402
from auditdm_eval.store import load_audit  # noqa: E402
from conftest import photo  # noqa: E402
from model_adapters import GenerationRequest, GenerationSettings, load_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def pair(i, source, origin="auditdm", question=None):
    return TrainPair(photo(i), question or f"what is {i}?", f"answer {i}", origin, source)


def test_one_generated_pair_per_original_and_ratio():
    original = [pair(i, f"train:{i}", "original") for i in range(4)]
    generated = [pair(10 + i, f"train:{i % 4}") for i in range(12)] + [pair(50, "elsewhere:0")]
    mixed = mix(original, generated, generated_per_original=1, seed=0)
    made = [p for p in mixed if p.origin == "auditdm"]
    assert len([p for p in mixed if p.origin == "original"]) == 4
    assert sorted(p.source_id for p in made) == ["train:0", "train:1", "train:2", "train:3"], "one per original, none for unknown images"
    capped = mix(original, generated, generated_per_original=None, generated_ratio=0.5, seed=0)
    assert sum(p.origin == "auditdm" for p in capped) == 2
    everything = mix([], generated, generated_per_original=1)
    assert len(everything) == 13, "with no original data every generated pair is kept"


def test_deduplication_keeps_originals_first():
    original = pair(1, "train:1", "original", "What colour is it?")
    duplicate = pair(1, "train:1", "auditdm", "what colour is it")  # same image, same normalised question
    other = pair(1, "train:1", "auditdm", "how many cats?")
    kept = deduplicate([duplicate, other, original])
    assert [p.origin for p in kept] == ["original", "auditdm"] and kept[1].question == "how many cats?"


def test_original_pairs_take_the_audit_source_ids():
    ds = datasets.Dataset.from_dict({"image": [photo(1), photo(2)], "q": ["a?", "b?"], "a": [["yes", "no"], ["two"]]})
    pairs = pairs_from_original(ds, "image", "q", "a", split="train")
    assert [(p.source_id, p.answer) for p in pairs] == [("train:0", "yes"), ("train:1", "two")]


@pytest.fixture(scope="module")
def audited(tiny_paths, tmp_path_factory):
    root = tmp_path_factory.mktemp("rectify")
    config = AuditConfig(
        target="tiny-gemma3", references=["tiny-gemma3-seed1"], auditor="tiny-gemma3",
        images="skimage:astronaut,chelsea,coffee,rocket", out=str(root / "audit"), answer_max_new_tokens=3,
        auditor_max_new_tokens=8, cache_dir=str(root / "cache"), progress=False,
    )
    run_audit(config)
    return root / "audit"


def test_audited_pairs_are_the_failures_answered_with_the_consensus(audited):
    rows = list(load_audit(audited))
    failures = pairs_from_audit(rows, "failures")
    assert len(failures) == sum(r["is_failure"] for r in rows) > 0
    assert {p.answer for p in failures} <= {r["consensus_answer"] for r in rows}
    assert len(pairs_from_audit(rows, "answerable")) == sum(r["ensemble_agrees"] for r in rows)
    with pytest.raises(ValueError, match="failures"):
        pairs_from_audit(rows, "everything")


def answers_after_reload(path: Path) -> list[str]:
    adapter = load_model(str(path))
    return adapter.generate([GenerationRequest((photo(7),), "what colour is the car?", settings=GenerationSettings(max_new_tokens=3))])


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_gemma3_recipe_trains_saves_and_reloads_through_model_adapters(audited, tmp_path, finetune):
    recipe = Recipe(name="t", model="tiny-gemma3", finetune=finetune, audited=[str(audited)], generated_per_original=None, selection="answerable",
                    max_steps=2, per_device_batch_size=2, global_batch_size=4, learning_rate=1e-3, output_dir=str(tmp_path / "out"))
    result = run_recipe(recipe)
    assert result.steps == 2 and math.isfinite(result.train_loss) and result.train_loss > 0
    saved = {p.name for p in result.output_dir.iterdir()}
    assert ("adapter_config.json" in saved) if finetune == "lora" else ("config.json" in saved and "adapter_config.json" not in saved)
    answers = answers_after_reload(result.output_dir)
    assert len(answers) == 1 and answers[0]
    assert load_model(str(result.output_dir)).fingerprint != load_model("tiny-gemma3").fingerprint, "a new cache identity"


def test_paligemma_recipe_uses_its_suffix_labels(audited, tmp_path):
    recipe = Recipe(name="p", model="tiny-paligemma2", finetune="full", audited=[str(audited)], generated_per_original=None, selection="answerable",
                    max_steps=2, per_device_batch_size=2, global_batch_size=2, learning_rate=1e-3, label_smoothing=0.2,
                    llm_dropout=0.1, output_dir=str(tmp_path / "pali"))
    result = run_recipe(recipe)
    assert math.isfinite(result.train_loss)
    assert answers_after_reload(result.output_dir)[0]


TABLE1 = {  # supplement Table 1: epochs, learning rate, weight decay, LLM dropout, label smoothing
    "vqav2": (14, 1e-5, 1e-7, 0.0, 0.0), "gqa": (4, 1e-5, 1e-7, 0.0, 0.0), "okvqa": (10, 5e-6, 0.0, 0.0, 0.0),
    "ai2d": (16, 1e-5, 1e-6, 0.0, 0.0), "docvqa": (10, 1e-5, 1e-6, 0.0, 0.0), "chartqa": (40, 1e-5, 1e-6, 0.1, 0.2),
    "refcoco": (120, 1e-5, 0.0, 0.0, 0.3), "cococap": (8, 1e-5, 1e-6, 0.0, 0.0),
}


@pytest.mark.parametrize("task", sorted(TABLE1))
def test_paligemma_configs_carry_table_1(task):
    recipe = Recipe.from_yaml(ROOT / "recipes" / "configs" / f"paligemma2_3b_{task}.yaml", audited=["runs/x"])
    assert (recipe.epochs, recipe.learning_rate, recipe.weight_decay, recipe.llm_dropout, recipe.label_smoothing) == TABLE1[task]
    assert recipe.global_batch_size == 256 and recipe.generated_per_original == 1 and recipe.model == "paligemma2-3b-448"


def test_gemma3_configs_carry_a4_and_the_control():
    main = Recipe.from_yaml(ROOT / "recipes/configs/gemma3_4b.yaml", audited=["runs/x"])
    assert (main.global_batch_size, main.learning_rate, main.epochs, main.selection) == (512, 2e-6, 1, "failures")
    control = Recipe.from_yaml(ROOT / "recipes/configs/gemma3_4b_same_images_control.yaml", audited=["runs/x"])
    assert control.selection == "answerable" and (control.global_batch_size, control.learning_rate) == (512, 2e-6)


def test_too_few_pairs_for_a_global_batch_is_a_clear_error(audited, tmp_path):
    recipe = Recipe(name="t", model="tiny-gemma3", audited=[str(audited)], selection="answerable", generated_per_original=None,
                    per_device_batch_size=2, global_batch_size=256, output_dir=str(tmp_path / "o"))
    with pytest.raises(ValueError, match="cannot fill one global batch of 256"):
        run_recipe(recipe)


def test_bad_recipes_name_the_problem(tmp_path):
    (tmp_path / "r.yaml").write_text("model: x\nepochz: 3\n")
    with pytest.raises(ValueError, match="epochz"):
        Recipe.from_yaml(tmp_path / "r.yaml")
    (tmp_path / "r.yaml").write_text("model: x\n")
    with pytest.raises(ValueError, match="no training data"):
        Recipe.from_yaml(tmp_path / "r.yaml")


@pytest.mark.slow
def test_sft_script_runs_as_documented(audited, auditdm_home, tmp_path):
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "sft.py"), "--config", str(ROOT / "recipes/configs/gemma3_4b_lora.yaml"),
         "--model", "tiny-gemma3", "--audited", str(audited), "--max-steps", "2", "--per-device-batch-size", "1",
         "--global-batch-size", "1",
         "--output-dir", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained 2 step(s)" in done.stdout and (tmp_path / "out" / "adapter_config.json").exists()


@pytest.mark.slow
def test_refinement_iterations_audit_the_fine_tuned_model(tiny_paths, auditdm_home, tmp_path):
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    (tmp_path / "recipe.yaml").write_text(
        "model: x\nfinetune: lora\nselection: answerable\ngenerated_per_original: null\n"
        "global_batch_size: 2\nper_device_batch_size: 2\nlearning_rate: 1.0e-3\n"
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "iterate.py"), "--target", "tiny-gemma3", "--ensemble", "tiny-gemma3-seed1",
         "--auditor", "tiny-gemma3", "--images", "skimage:astronaut,chelsea", "--recipe", str(tmp_path / "recipe.yaml"),
         "--iterations", "2", "--workdir", str(tmp_path / "it"), "--max-steps", "1"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    second = load_audit(tmp_path / "it" / "iter2" / "audit")
    assert set(second["target_model"]) == {str(tmp_path / "it" / "iter1" / "model")}, "iteration 2 audits the fine-tuned model"
    assert (tmp_path / "it" / "iter1" / "model" / "adapter_config.json").exists()
    assert (tmp_path / "it" / "iter2" / "model" / "config.json").exists(), "LoRA over a LoRA checkpoint is saved merged"
    assert answers_after_reload(tmp_path / "it" / "iter2" / "model")[0]
