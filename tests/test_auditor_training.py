"""Training the auditor with GRPO on the planted-weakness world, with the warm-started world auditor
users get (built once per test session under AUDITDM_HOME, a few minutes on 2 cores)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from auditdm_eval.cli import main as auditdm
from auditdm_eval.compare import compare_auditors
from auditdm_eval.config import AuditConfig
from auditdm_eval.training.grpo import RECORD, RUN_FILE, checkpoints, parse, train_auditor
from auditdm_eval.training.resume import TrainingFolder

RECIPE = str(Path(__file__).resolve().parents[1] / "recipes" / "configs" / "auditor_world.yaml")
NOISY = ["world-oracle-noisy-a", "world-oracle-noisy-b", "world-oracle-noisy-c"]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next(path.glob("*.safetensors"))))


def test_a_few_steps_in_all_three_modes_train_log_every_term_and_reload(world_auditor, tmp_path):
    out = tmp_path / "auditor"
    run = parse([
        "--config", RECIPE, "--auditor", str(world_auditor), "--modes", "question", "regenerate", "edit",
        "--images", "world:24:3", "--max_steps", "3", "--save_steps", "2", "--per_device_train_batch_size", "16",
        "--num_generations", "4", "--logging_steps", "1", "--output_dir", str(out), "--disable_tqdm", "true",
    ])
    trained = train_auditor(run)
    assert trained.steps == 3
    before, after = weights(world_auditor), weights(out)
    assert any(not torch.equal(before[name], after[name]) for name in before), "GRPO steps change the auditor's weights"
    logged = set().union(*(entry.keys() for entry in trained.log_history))
    for term in ("disagreement", "answerability", "format", "novelty"):
        assert f"rewards/{term}/mean" in logged, f"the {term} term is logged under its own name"
    assert "audit/failed/total" in logged and "audit/answerable_share" in logged
    assert [p.name for p in checkpoints(out)] == ["checkpoint-2", "checkpoint-3"]
    record = json.loads((out / "auditor_training.json").read_text())
    assert record["audit"]["modes"] == ["question", "regenerate", "edit"]
    # a checkpoint loads through model_adapters and audits like any model
    code = auditdm([
        "audit", "--target", "world-target-mirror", "--ensemble", ",".join(NOISY), "--agreement", "majority",
        "--auditor", str(checkpoints(out)[0]), "--images", "world:4:9", "--mode", "question,regenerate,edit",
        "--regenerate-renderer", "world", "--edit-renderer", "world", "--annotator", "world", "--no-cache",
        "--auditor-max-new-tokens", "48", "--out", str(tmp_path / "audit"), "--no-progress",
    ])
    assert code == 0
    assert json.loads((tmp_path / "audit" / "summary.json").read_text())["probes"] > 0


def test_the_policy_and_its_reference_are_scored_without_the_image_placeholder(world_auditor, tmp_path):
    """trl samples with the image token suppressed; the trainer scores the same distribution: the
    placeholder gets no mass in the policy's or the KL reference's log-probabilities (its fused head and
    its plain forward agree), and nothing of the mask is saved with the weights."""
    from PIL import Image

    from auditdm_eval.training.grpo import build_trainer, instruction

    run = parse([
        "--config", RECIPE, "--auditor", str(world_auditor), "--images", "world:8:3", "--max_steps", "1",
        "--per_device_train_batch_size", "8", "--num_generations", "4", "--output_dir", str(tmp_path / "out"),
    ])
    trainer = build_trainer(run)
    image_id = trainer.model.config.image_token_id
    processor = trainer.processing_class
    message = [{"role": "user", "content": [{"type": "image", "image": Image.new("RGB", (48, 48), "red")},
                                            {"type": "text", "text": instruction("auditdm", "question")}]}]
    inputs = processor.apply_chat_template([message], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    completion = processor.tokenizer(" how many red objects are there?", add_special_tokens=False, return_tensors="pt")["input_ids"]
    input_ids = torch.cat([inputs["input_ids"], completion], dim=1)
    labels = input_ids.clone()
    labels[:, : inputs["input_ids"].shape[1]] = -100
    for scored in (trainer.model, trainer.ref_model):
        with torch.no_grad():
            logits = scored(input_ids=input_ids, pixel_values=inputs["pixel_values"]).logits[:, :-1].float()
            fused = scored(input_ids=input_ids, pixel_values=inputs["pixel_values"], labels=labels, fused_lm_head=True).log_probs
        assert logits[..., image_id].max() < -1e3, "the placeholder is out of the scored distribution"
        mask = labels[:, 1:] != -100
        plain = logits.log_softmax(-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        assert torch.allclose(fused[mask], plain[mask], atol=1e-4), "the fused head scores what the forward gives"
    assert not any(name.endswith("lm_head.bias") for name in trainer.model.state_dict()), "the mask is not saved"


def test_an_interrupted_training_resumes_from_its_last_whole_checkpoint_bit_for_bit(world_auditor, auditdm_home, tmp_path, capsys):
    """Ctrl-C part-way, then the same command again: it resumes from the last checkpoint the Trainer
    finished writing and ends with exactly the weights of a run never stopped (the Trainer's own resume
    restores no Gemma3 weight: transformers#43701). A finished run is not trained again; a changed
    setting is refused, naming it."""
    from conftest import ctrl_c_reaches_it

    flags = [
        "--config", RECIPE, "--auditor", str(world_auditor), "--target", "world-target-mirror", "--images", "world:24:3",
        "--max_steps", "8", "--save_steps", "2", "--per_device_train_batch_size", "16", "--num_generations", "4",
        "--disable_tqdm", "true",
    ]
    train_auditor(parse([*flags, "--output_dir", str(tmp_path / "never-stopped")]))
    out = tmp_path / "stopped"
    command = [str(Path(sys.executable).with_name("auditdm")), "train-auditor", *flags, "--output_dir", str(out)]
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_reaches_it)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "checkpoint-2" / "trainer_state.json").exists():
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate()[1]
    assert process.returncode == 130, stderr
    assert "resumes from its last checkpoint" in stderr and "Traceback" not in stderr, stderr
    assert not (out / "auditor_training.json").exists(), "stopped before the end"
    (out / "checkpoint-7").mkdir()  # a checkpoint killed while the Trainer wrote it: no trainer_state.json
    (out / "checkpoint-7" / "model.safetensors").write_bytes(b"half")
    last = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if (p / "trainer_state.json").exists())

    capsys.readouterr()
    assert auditdm(["train-auditor", *flags, "--output_dir", str(out)]) == 0
    assert f"resuming from {out / f'checkpoint-{last}'}" in capsys.readouterr().err
    resumed, never_stopped = weights(out), weights(tmp_path / "never-stopped")
    assert all(torch.equal(resumed[name], never_stopped[name]) for name in never_stopped), "the same weights as a run never stopped"
    assert json.loads((out / "auditor_training.json").read_text())["global_step"] == 8

    assert auditdm(["train-auditor", *flags, "--output_dir", str(out)]) == 0
    assert "already trained (8 steps): nothing to do" in capsys.readouterr().err
    assert auditdm(["train-auditor", *flags, "--output_dir", str(out), "--learning_rate", "1e-3"]) == 2
    refused = capsys.readouterr().err
    assert "grpo.learning_rate: 0.0003 -> 0.001" in refused and "--overwrite" in refused, refused
    kept = weights(out)
    assert all(torch.equal(kept[name], resumed[name]) for name in resumed), "the refused run changed nothing"
    with TrainingFolder(out, "train-auditor", RUN_FILE, RECORD):  # a run that is still training there
        assert auditdm(["train-auditor", *flags, "--output_dir", str(out), "--max_steps", "10"]) == 2
    assert "in use by another train-auditor run" in capsys.readouterr().err


def test_a_run_moved_to_other_hardware_continues_and_another_run_is_refused(tmp_path, caplog):
    """Run identity: moving a run to a GPU (use_cpu, bf16) continues it from its last checkpoint, with a
    warning that it will not match a run never moved; a changed hyperparameter is refused, naming it."""
    import pytest

    from auditdm_eval.store import RunMismatchError

    settings = {"audit": {"target": "world-target-mirror"}, "grpo": {"learning_rate": 3e-4, "use_cpu": True, "bf16": False}}
    with TrainingFolder(tmp_path, "train-auditor", RUN_FILE, RECORD) as folder:
        assert folder.start(settings, max_steps=8, epochs=1).checkpoint is None
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text(json.dumps({"global_step": 4}))
    on_a_gpu = {**settings, "grpo": {**settings["grpo"], "use_cpu": False, "bf16": True}}
    with TrainingFolder(tmp_path, "train-auditor", RUN_FILE, RECORD) as folder:
        assert folder.start(on_a_gpu, max_steps=8, epochs=1).checkpoint == tmp_path / "checkpoint-4"
    assert "grpo.bf16: False -> True; grpo.use_cpu: True -> False" in caplog.text and "bit for bit" in caplog.text
    another = {**on_a_gpu, "grpo": {**on_a_gpu["grpo"], "learning_rate": 1e-3}}
    with TrainingFolder(tmp_path, "train-auditor", RUN_FILE, RECORD) as folder, pytest.raises(RunMismatchError, match="grpo.learning_rate"):
        folder.start(another, max_steps=8, epochs=1)
    assert (tmp_path / "checkpoint-4").is_dir(), "the refused run removed nothing"


def test_training_against_a_planted_weakness_beats_the_baseline_and_a_sound_target_shows_nothing(world_auditor, tmp_path):
    """The trained auditor finds the red/green-swapped target's failures far more often than the
    warm start it began from and the prompted baseline on held-out scenes, every failure it flags is
    genuine, and the same auditor finds no genuine failure of a target without weakness. (Red/green
    learns in 30 steps, 13.8% -> 56% measured; mirror, which needs the image more, took 120.)"""
    out = tmp_path / "redgreen"
    train_auditor(parse([
        "--config", RECIPE, "--auditor", str(world_auditor), "--target", "world-target-redgreen", "--max_steps", "30",
        "--output_dir", str(out), "--disable_tqdm", "true", "--save_strategy", "no",
    ]))
    held_out = AuditConfig(
        target="world-target-redgreen", references=NOISY, agreement_rule="majority", auditor=str(out), images="world:80:7",
        modes=["question"], answer_max_new_tokens=4, auditor_max_new_tokens=24, no_cache=True, progress=False,
    )
    comparison = compare_auditors([str(out), str(world_auditor), f"{world_auditor}@baseline"], held_out, tmp_path / "compare")
    trained, warm_start, baseline = (report.overall for report in comparison.reports)
    assert trained.success_rate > 3 * max(baseline.success_rate, 0.05), (trained, baseline)
    assert trained.success_rate > 2 * warm_start.success_rate, (trained, warm_start)
    assert trained.precision >= 0.9
    sound = compare_auditors([str(out)], held_out.with_overrides(target="world-target-none"), tmp_path / "sound")
    assert sound.reports[0].overall.genuine_failures == 0
    assert sound.reports[0].overall.success_rate < 0.05, "noisy references alone rarely fake a failure"


def test_the_policy_trains_in_float32_unless_told_and_a_lora_base_follows_the_audit():
    """--dtype auto keeps weights being trained in float32 (bf16 would swallow small updates); a LoRA run's
    frozen base takes the audit's dtype for the machine; an explicit --dtype is obeyed."""
    from types import SimpleNamespace

    import torch

    from auditdm_eval.config import AuditConfig
    from auditdm_eval.training.grpo import policy_dtype

    full, lora = SimpleNamespace(use_peft=False), SimpleNamespace(use_peft=True)
    assert policy_dtype(AuditConfig(device="cuda"), full) == torch.float32
    assert policy_dtype(AuditConfig(device="cpu"), lora) == torch.float32
    assert policy_dtype(AuditConfig(dtype="bfloat16", device="cpu"), full) == torch.bfloat16
