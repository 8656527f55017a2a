"""Rectification: data mixing, recipes (ours + trl's SFTConfig + trl's ModelConfig, one parser) on tiny
models (LoRA and full), derived settings, the paper's configs, the refinement loop's parser, the README."""

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import pytest
import torch

pytest.importorskip("trl")

from conftest import photo  # noqa: E402

from auditdm_eval.config import AuditConfig  # noqa: E402
from auditdm_eval.errors import ConfigError  # noqa: E402
from auditdm_eval.rectify import iterate as iterate_module  # noqa: E402
from auditdm_eval.rectify.mixing import TrainPair, deduplicate, mix, pairs_from_audit, pairs_from_original  # noqa: E402
from auditdm_eval.rectify.recipe import RECIPE_DEFAULTS, Environment, derive, parse_recipe  # noqa: E402
from auditdm_eval.rectify.train import run_recipe  # noqa: E402
from auditdm_eval.runner import run_audit  # noqa: E402
from auditdm_eval.store import RunMismatchError, load_audit  # noqa: E402
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


def recipe(**values):
    """A recipe from values passed in code (above the recipe defaults, below nothing)."""
    return parse_recipe(values=values)


def answers_after_reload(path: Path) -> list[str]:
    adapter = load_model(str(path))
    return adapter.generate([GenerationRequest((photo(7),), "what colour is the car?", settings=GenerationSettings(max_new_tokens=3))])


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_gemma3_recipe_trains_saves_and_reloads_through_model_adapters(audited, tmp_path, finetune):
    r = recipe(model_name_or_path="tiny-gemma3", use_peft=finetune == "lora", audited=[str(audited)], generated_per_original=None,
               selection="answerable", max_steps=2, per_device_train_batch_size=2, global_batch_size=4, learning_rate=1e-3,
               output_dir=str(tmp_path / "out"))
    assert r.training.gradient_accumulation_steps == 2, "global batch 4 = 2 per device x 1 process x 2 accumulation steps"
    result = run_recipe(r)
    assert result.steps == 2 and math.isfinite(result.train_loss) and result.train_loss > 0
    saved = {p.name for p in result.output_dir.iterdir()}
    assert ("adapter_config.json" in saved) if finetune == "lora" else ("config.json" in saved and "adapter_config.json" not in saved)
    if finetune == "lora":  # trl's get_peft_config, the language model's attention only
        adapter = json.loads((result.output_dir / "adapter_config.json").read_text())
        assert adapter["target_modules"] == RECIPE_DEFAULTS["lora_target_modules"][0] and adapter["r"] == 16
    answers = answers_after_reload(result.output_dir)
    assert len(answers) == 1 and answers[0]
    assert load_model(str(result.output_dir)).fingerprint != load_model("tiny-gemma3").fingerprint, "a new cache identity"
    again = parse_recipe(["--config", str(result.output_dir / "recipe.yaml")])  # the saved recipe loads back
    assert (again.values["learning_rate"], again.values["max_steps"], again.model.use_peft) == (1e-3, 2, finetune == "lora")
    assert again.rectify == r.rectify and again.training.gradient_accumulation_steps == 2


def test_a_stopped_fine_tune_resumes_from_its_last_checkpoint_to_the_same_weights(audited, tmp_path):
    """What a kill after the first checkpoint leaves (later checkpoints and the final model absent): the same
    recipe again resumes there and ends with exactly the weights of a run never stopped; run again, it trains
    nothing; another recipe into the folder is refused. Full fine-tuning of Gemma3: the Trainer's own resume
    restores none of its weights (transformers#43701)."""
    from safetensors.torch import load_file

    def recipe_into(out, **changes):
        values = dict(model_name_or_path="tiny-gemma3", use_peft=False, audited=[str(audited)], generated_per_original=None,
                      selection="answerable", max_steps=4, save_steps=2, save_total_limit=2, per_device_train_batch_size=2,
                      global_batch_size=2, learning_rate=1e-3, output_dir=str(out))
        return recipe(**{**values, **changes})

    never_stopped = run_recipe(recipe_into(tmp_path / "a"))
    stopped = tmp_path / "b"
    run_recipe(recipe_into(stopped))
    shutil.rmtree(stopped / "checkpoint-4")
    for name in ("model.safetensors", "recipe.yaml", "rectify_training.json"):
        (stopped / name).unlink()
    told = []
    resumed = run_recipe(recipe_into(stopped), announce=told.append)
    assert told == [f"{stopped}: resuming from {stopped / 'checkpoint-2'}"]
    assert resumed.steps == never_stopped.steps == 4
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(stopped / "model.safetensors"))
    assert all(torch.equal(a[name], b[name]) for name in a), "the same weights as a run never stopped"
    told.clear()
    assert run_recipe(recipe_into(stopped), announce=told.append).steps == 4
    assert told == [f"{stopped}: already trained (4 steps): nothing to do"]
    with pytest.raises(RunMismatchError, match=r"training.learning_rate: 0.001 -> 0.01.*--overwrite"):
        run_recipe(recipe_into(stopped, learning_rate=1e-2))


def test_paligemma_recipe_uses_its_suffix_labels(audited, tmp_path):
    r = recipe(model_name_or_path="tiny-paligemma2", audited=[str(audited)], generated_per_original=None, selection="answerable",
               max_steps=2, per_device_train_batch_size=2, global_batch_size=2, learning_rate=1e-3, label_smoothing_factor=0.2,
               llm_dropout=0.1, output_dir=str(tmp_path / "pali"))
    assert r.training.label_smoothing_factor == 0.2 and not r.model.use_peft
    result = run_recipe(r)
    assert math.isfinite(result.train_loss)
    config = json.loads((result.output_dir / "config.json").read_text())
    assert config["text_config"]["attention_dropout"] == 0.1, "the paper's LLM dropout reaches the language model"
    assert answers_after_reload(result.output_dir)[0]


TABLE1 = {  # supplement Table 1: epochs, learning rate, weight decay, LLM dropout, label smoothing
    "vqav2": (14, 1e-5, 1e-7, 0.0, 0.0), "gqa": (4, 1e-5, 1e-7, 0.0, 0.0), "okvqa": (10, 5e-6, 0.0, 0.0, 0.0),
    "ai2d": (16, 1e-5, 1e-6, 0.0, 0.0), "docvqa": (10, 1e-5, 1e-6, 0.0, 0.0), "chartqa": (40, 1e-5, 1e-6, 0.1, 0.2),
    "refcoco": (120, 1e-5, 0.0, 0.0, 0.3), "cococap": (8, 1e-5, 1e-6, 0.0, 0.0),
}
CONFIGS = ROOT / "recipes" / "configs"


def load(name: str, *flags: str):
    return parse_recipe(["--config", str(CONFIGS / name), "--audited", "runs/x", *flags], env=Environment(world_size=1))


def test_every_recipe_file_loads_through_the_parser():
    names = sorted(p.name for p in CONFIGS.glob("*.yaml") if not p.name.startswith("auditor_"))  # GRPO recipes: test_auditor_scoring
    assert names == sorted([f"paligemma2_3b_{task}.yaml" for task in TABLE1] + [
        "gemma3_4b.yaml", "gemma3_4b_lora.yaml", "gemma3_4b_same_images_control.yaml"])
    for name in names:
        r = load(name)
        assert r.training.lr_scheduler_type.value == "cosine" and r.training.run_name == name.removesuffix(".yaml")
        assert r.training.output_dir.startswith("outputs/") and r.rectify.selection in ("failures", "answerable")
        assert r.training.max_length is None and r.training.remove_unused_columns is False
        assert r.training.gradient_accumulation_steps * r.training.per_device_train_batch_size == r.rectify.global_batch_size


@pytest.mark.parametrize("task", sorted(TABLE1))
def test_paligemma_configs_carry_table_1(task):
    r = load(f"paligemma2_3b_{task}.yaml")
    t = r.training
    assert (t.num_train_epochs, t.learning_rate, t.weight_decay, r.rectify.llm_dropout, t.label_smoothing_factor) == TABLE1[task]
    assert r.rectify.global_batch_size == 256 and r.rectify.generated_per_original == 1
    assert r.model.model_name_or_path == "paligemma2-3b-448" and not r.model.use_peft and r.rectify.selection == "failures"
    assert t.per_device_train_batch_size == 8 and t.gradient_accumulation_steps == 32


def test_gemma3_configs_carry_a4_the_control_and_the_lora_variant():
    main = load("gemma3_4b.yaml")
    assert (main.rectify.global_batch_size, main.training.learning_rate, main.training.num_train_epochs, main.rectify.selection) == (512, 2e-6, 1, "failures")
    assert main.model.model_name_or_path == "gemma3-4b" and not main.model.use_peft and main.rectify.generated_per_original is None
    control = load("gemma3_4b_same_images_control.yaml")
    assert control.rectify.selection == "answerable" and (control.rectify.global_batch_size, control.training.learning_rate) == (512, 2e-6)
    lora = load("gemma3_4b_lora.yaml")
    assert lora.model.use_peft and (lora.model.lora_r, lora.model.lora_alpha, lora.model.lora_dropout) == (16, 32, 0.05)
    assert lora.model.lora_target_modules == r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)", "one entry: a regex for peft"
    from trl import get_peft_config

    assert get_peft_config(lora.model).target_modules == lora.model.lora_target_modules


def test_flags_override_the_file_and_code_values_sit_between():
    r = load("gemma3_4b.yaml", "--learning-rate", "3e-4", "--model", "tiny-gemma3", "--max_steps", "5", "--use_peft",
             "--lora_r", "4", "--seed", "7", "--original_dataset", "some/data", "--generated_per_original", "none")
    assert (r.training.learning_rate, r.training.max_steps, r.training.seed) == (3e-4, 5, 7)
    assert r.model.model_name_or_path == "tiny-gemma3" and r.model.use_peft and r.model.lora_r == 4
    assert r.rectify.original_dataset == "some/data" and r.rectify.generated_per_original is None
    assert r.training.num_train_epochs == 1, "the rest from the file"
    assert r.explicit["learning_rate"] == "command line" and r.explicit["num_train_epochs"].endswith("gemma3_4b.yaml")
    in_code = parse_recipe(["--config", str(CONFIGS / "gemma3_4b.yaml"), "--weight_decay", "0.5"], values={"learning_rate": 1e-3, "weight_decay": 0.1})
    assert (in_code.training.learning_rate, in_code.training.weight_decay) == (1e-3, 0.5)
    default = recipe()
    assert (default.training.seed, default.training.save_strategy.value, default.training.logging_steps) == (0, "steps", 1)
    assert (default.training.save_steps, default.training.save_total_limit) == (500, 1), "a stopped fine-tune can resume"


ENV_CPU = Environment(world_size=1, cuda=False, bf16_supported=False)
ENV_GPU = Environment(world_size=2, cuda=True, bf16_supported=True)


def values(**changes):
    return {**recipe().values, **changes}


def test_derived_settings_follow_the_batch_size_and_the_device():
    on_gpu = derive(values(global_batch_size=256, per_device_train_batch_size=8), {}, ENV_GPU)
    assert on_gpu["gradient_accumulation_steps"] == 16, "256 / (8 per device x 2 processes)"
    assert (on_gpu["bf16"], on_gpu["use_cpu"], on_gpu["dtype"]) == (True, False, "bfloat16")
    on_cpu = derive(values(global_batch_size=10, per_device_train_batch_size=4), {}, ENV_CPU)
    assert on_cpu["gradient_accumulation_steps"] == 3, "rounded up: never a smaller global batch than asked"
    assert (on_cpu["bf16"], on_cpu["use_cpu"], on_cpu["dtype"]) == (False, True, "float32")
    for derived in (on_gpu, on_cpu):
        assert derived["max_length"] is None and derived["remove_unused_columns"] is False
        assert derived["dataset_kwargs"] == {"skip_prepare_dataset": True}


def test_derived_settings_honour_what_is_safe_to_honour():
    no_bf16 = derive(values(bf16=False), {"bf16": "command line"}, ENV_GPU)
    assert (no_bf16["bf16"], no_bf16["dtype"]) == (False, "float32")
    cpu_anyway = derive(values(use_cpu=True), {"use_cpu": "command line"}, ENV_GPU)
    assert (cpu_anyway["use_cpu"], cpu_anyway["bf16"]) == (True, False)
    half = derive(values(dtype="bfloat16"), {"dtype": "command line"}, ENV_CPU)
    assert half["dtype"] == "bfloat16"
    fp16 = derive(values(fp16=True), {"fp16": "command line"}, ENV_GPU)
    assert (fp16["bf16"], fp16["dtype"]) == (False, "float32")
    same = derive(values(global_batch_size=64, per_device_train_batch_size=4, gradient_accumulation_steps=8), {"gradient_accumulation_steps": "x"}, ENV_GPU)
    assert same["gradient_accumulation_steps"] == 8, "an explicit value equal to the derived one is fine"
    kept = derive(values(dataset_kwargs={"other": 1}), {"dataset_kwargs": "x"}, ENV_CPU)
    assert kept["dataset_kwargs"] == {"other": 1, "skip_prepare_dataset": True}


@pytest.mark.parametrize("field, value, env, message", [
    ("gradient_accumulation_steps", 3, ENV_CPU, "follows from global_batch_size 256 / \\(per_device_train_batch_size 8 x 1 process\\(es\\)\\) = 32"),
    ("max_length", 2048, ENV_CPU, "image tokens"),
    ("remove_unused_columns", True, ENV_CPU, "collator needs"),
    ("dataset_kwargs", {"skip_prepare_dataset": False}, ENV_CPU, "processes the images itself"),
    ("bf16", True, ENV_CPU, "on the CPU"),
    ("use_cpu", False, ENV_CPU, "no CUDA device"),
])
def test_conflicting_derived_settings_are_clear_errors(field, value, env, message):
    with pytest.raises(ConfigError, match=f"{field} \\(set in command line\\).*{message}"):
        derive(values(**{field: value}), {field: "command line"}, env)


def test_a_conflicting_derived_setting_in_a_recipe_file_names_the_file(tmp_path):
    (tmp_path / "r.yaml").write_text("model_name_or_path: tiny-gemma3\nremove_unused_columns: true\n")
    with pytest.raises(ConfigError, match=r"remove_unused_columns \(set in .*r\.yaml\)"):
        parse_recipe(["--config", str(tmp_path / "r.yaml")])
    with pytest.raises(ConfigError, match=r"gradient_accumulation_steps \(set in command line\)"):
        load("gemma3_4b.yaml", "--gradient_accumulation_steps", "3")


def test_too_few_pairs_for_a_global_batch_is_a_clear_error(audited, tmp_path):
    r = recipe(model_name_or_path="tiny-gemma3", audited=[str(audited)], selection="answerable", generated_per_original=None,
               per_device_train_batch_size=2, global_batch_size=256, output_dir=str(tmp_path / "o"))
    with pytest.raises(ConfigError, match="cannot fill one global batch of 256"):
        run_recipe(r)


def test_bad_recipes_name_the_problem(tmp_path):
    (tmp_path / "r.yaml").write_text("model_name_or_path: x\nepochz: 3\nepochs: 2\n")
    with pytest.raises(ConfigError, match=r"epochz.*epochs \(now num_train_epochs\)"):
        parse_recipe(["--config", str(tmp_path / "r.yaml")])
    (tmp_path / "r.yaml").write_text("model_name_or_path: x\n")
    with pytest.raises(ConfigError, match="no training data"):
        run_recipe(parse_recipe(["--config", str(tmp_path / "r.yaml")]))
    with pytest.raises(ConfigError, match="no model"):
        run_recipe(recipe(audited=["runs/x"]))
    with pytest.raises(ConfigError, match="selection must be one of failures, answerable"):
        recipe(selection="everything")
    with pytest.raises(ConfigError, match="quantized"):
        recipe(load_in_4bit=True)


ITERATE_BASE = ["--auditor", "tiny-gemma3", "--images", "skimage:astronaut,chelsea", "--recipe", str(CONFIGS / "gemma3_4b_lora.yaml")]


def test_iterate_takes_every_audit_flag_and_the_recipe_in_one_parser():
    audit, engine, loop, r = iterate_module.parse([
        *ITERATE_BASE, "--target", "tiny-gemma3", "--ensemble", "a,b", "--mode", "question,edit", "--probes-per-image", "3",
        "--agreement", "majority", "--max_steps", "1", "--learning_rate", "1e-3", "--seed", "5", "--iterations", "3",
        "--workdir", "w", "--engine", "local", "--edit-model", "tiny-flux-kontext",
    ])
    assert (audit.target, audit.references, audit.modes, audit.probes_per_image) == ("tiny-gemma3", ["a", "b"], ["question", "edit"], 3)
    assert (audit.agreement_rule, audit.edit_model, engine.engine, loop.iterations, loop.workdir) == ("majority", "tiny-flux-kontext", "local", 3, "w")
    assert (r.training.max_steps, r.training.learning_rate, r.model.use_peft, r.model.model_name_or_path) == (1, 1e-3, True, "tiny-gemma3")
    assert audit.seed == r.training.seed == 5, "one --seed for the audit and the training"
    fallback, *_ = iterate_module.parse(ITERATE_BASE)
    assert fallback.target == "gemma3-4b", "no --target: the recipe's model is the first target"


def test_iterate_declares_no_field_twice_and_reserves_the_per_iteration_paths():
    from dataclasses import fields

    from auditdm_eval.engines import EngineConfig

    parser = iterate_module.iterate_parser([])
    main_flags = [action.dest for action in parser._actions if f"--{action.dest}" in action.option_strings]
    assert len(main_flags) == len(set(main_flags)), "each field one flag"
    for dtype in (AuditConfig, EngineConfig, iterate_module.IterateArguments, *iterate_module.recipe_types()):
        assert {f.name for f in fields(dtype) if f.init} <= set(main_flags), dtype.__name__
    for flag in ("--out", "--audited", "--output_dir"):
        with pytest.raises(ConfigError, match="set by the loop for each iteration"):
            iterate_module.parse([*ITERATE_BASE, flag, "x"])


def readme_rectification_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Rectification"):]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.DOTALL).group(1)
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def placeholders_filled(command: str, audited: Path) -> list[str]:
    command = re.sub(r"runs/[\w.-]+", str(audited), command)
    command = command.replace("<AI2D train split>", "org/ai2d").replace("hf:<image pool>", "skimage:astronaut")
    return shlex.split(command)


def test_readme_commands_parse(audited):
    commands = readme_rectification_commands()
    assert [c.split()[:2] for c in commands] == [["python", "recipes/sft.py"]] * 2 + [["accelerate", "launch"], ["python", "recipes/iterate.py"]]
    for command in commands:
        argv = placeholders_filled(command, audited)
        script = next(i for i, arg in enumerate(argv) if arg.endswith(".py"))
        if argv[script] == "recipes/sft.py":
            r = parse_recipe(argv[script + 1:])
            assert r.rectify.audited == [str(audited)]
        else:
            audit, _, loop, r = iterate_module.parse(argv[script + 1:])
            assert (audit.target, audit.modes, loop.iterations) == ("gemma3-4b", ["question", "edit"], 2)
    tuned = parse_recipe(placeholders_filled(commands[1], audited)[2:])
    assert (tuned.training.learning_rate, tuned.training.num_train_epochs) == (1e-6, 2)


@pytest.mark.slow
def test_sft_script_runs_as_documented(audited, auditdm_home, tmp_path):
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    first = placeholders_filled(readme_rectification_commands()[0], audited)  # the README's first command, on tiny models
    done = subprocess.run(
        [sys.executable, *first[1:], "--model", "tiny-gemma3", "--max_steps", "2", "--per_device_train_batch_size", "1",
         "--global_batch_size", "1", "--output_dir", str(tmp_path / "out")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "trained 2 step(s)" in done.stdout and (tmp_path / "out" / "adapter_config.json").exists()
    bad = subprocess.run([sys.executable, *first[1:], "--max_length", "64"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "max_length (set in command line) = 64" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_refinement_iterations_audit_the_fine_tuned_model(tiny_paths, auditdm_home, tmp_path):
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    (tmp_path / "recipe.yaml").write_text(
        "use_peft: true\nselection: answerable\ngenerated_per_original: null\n"
        "global_batch_size: 2\nper_device_train_batch_size: 2\nlearning_rate: 1.0e-3\noutput_dir: ignored/by/the/loop\n"
    )
    (tmp_path / "auditor.yaml").write_text(  # one GRPO step per iteration, the loop's references
        "modes: [question]\nmax_steps: 1\nper_device_train_batch_size: 2\nnum_generations: 2\nmax_completion_length: 6\n"
        "answer_max_new_tokens: 3\nsave_strategy: 'no'\nlogging_steps: 1\nreport_to: []\ndisable_tqdm: true\n"
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "recipes" / "iterate.py"), "--target", "tiny-gemma3", "--ensemble", "tiny-gemma3-seed1",
         "--auditor", "tiny-gemma3", "--images", "skimage:astronaut,chelsea", "--recipe", str(tmp_path / "recipe.yaml"),
         "--iterations", "2", "--workdir", str(tmp_path / "it"), "--max_steps", "1", "--answer-max-new-tokens", "3",
         "--auditor-max-new-tokens", "8", "--no-progress", "--auditor_recipe", str(tmp_path / "auditor.yaml")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    second = load_audit(tmp_path / "it" / "iter2" / "audit")
    assert set(second["target_model"]) == {str(tmp_path / "it" / "iter1" / "model")}, "iteration 2 audits the fine-tuned model"
    trained = json.loads((tmp_path / "it" / "iter2" / "auditor" / "auditor_training.json").read_text())
    assert trained["audit"]["target"] == str(tmp_path / "it" / "iter1" / "model"), "the auditor is trained on the latest target"
    assert trained["audit"]["auditor"] == str(tmp_path / "it" / "iter1" / "auditor"), "starting from the last iteration's auditor"
    assert set(second["auditor_id"]) == {str(tmp_path / "it" / "iter2" / "auditor")}, "and the audit writes with it"
    assert (tmp_path / "it" / "iter1" / "model" / "adapter_config.json").exists()
    assert (tmp_path / "it" / "iter2" / "model" / "config.json").exists(), "LoRA over a LoRA checkpoint is saved merged"
    assert not (tmp_path / "ignored").exists()
    assert answers_after_reload(tmp_path / "it" / "iter2" / "model")[0]


def test_gradient_checkpointing_given_alone_is_honoured():
    assert recipe().training.activation_checkpointing is False, "the recipes' default"
    assert recipe(gradient_checkpointing=True).training.activation_checkpointing is True
    assert load("gemma3_4b.yaml", "--activation_checkpointing").training.gradient_checkpointing is True


def test_unknown_flags_are_named_with_a_hint_and_no_abbreviation_is_guessed(capsys):
    for argv, hint in ((["--epochs", "3"], "--epochs (now num_train_epochs)"), (["--learning-rat", "3"], "did you mean learning_rate?")):
        with pytest.raises(SystemExit) as exited:
            parse_recipe(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert hint in err and "usage:" not in err


def test_ctrl_c_in_a_recipe_script_exits_130_with_one_line(capsys):
    from auditdm_eval.rectify.train import report_errors

    def stopped():
        raise KeyboardInterrupt

    assert report_errors("recipes/sft.py", stopped) == 130
    said = capsys.readouterr().err
    assert said.startswith("recipes/sft.py: interrupted;") and "resumes from the last checkpoint" in said and said.count("\n") == 1
