"""GRPO steps of the auditor at the real sizes of the paper's models, on a GPU.

The models are the ``random-*`` checkpoints of :mod:`model_adapters.random_real` (Gemma3-4B the
auditor, PaliGemma2-3B-448 the target, Qwen2.5-VL-7B a reference; random weights, built once and
loaded back through the adapters a real checkpoint goes through). The trainer is the one
``auditdm train-auditor`` builds from a recipe (``--config``, the LoRA recipe by default), so the
policy's sampling, the reward (the audit's own stages: the target and the references answer every
completion) and the update are timed as a user runs them. Every completion is exactly
``--completion-tokens`` long and every answer ``--answer-tokens`` long: random weights never end a
text early, so the figures do not depend on what they happen to say.

Reported per step: its seconds, the reward's share of them (the audit's stages), trl's own
``step_time`` and the GPU's peak memory; per model its build (0 when on disk) and disk size. The
JSON is written after every step, so a run stopped at its time limit keeps what it measured.
``--torch-log-probs`` and ``--detect-anomaly`` diagnose a gradient that is not finite (README, "GRPO at
real sizes"); ``--diagnose`` runs both and more on the first step's own loss, in one run.

    python benchmarks/real_size_grpo.py --json benchmarks/results/real-size-grpo-h200-lora.json
    python benchmarks/real_size_grpo.py --config recipes/configs/auditor_gemma3_4b.yaml --steps 2 \\
        --json benchmarks/results/real-size-grpo-h200-full.json            # full fine-tuning, the paper's A.2
    python benchmarks/real_size_grpo.py --auditor tiny-gemma3 --target tiny-paligemma2 --references tiny-qwen2.5-vl \\
        --steps 2 --batch 4 --generations 2 --images 4 --completion-tokens 6   # the same on tiny models, on a CPU
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import machine, make_images  # a sibling module: this folder is on sys.path when a script here runs
from gradient_diagnosis import VARIANTS, diagnosis_callback, torch_log_probs
from real_size import build, synchronize

from auditdm_eval.reward import AuditReward
from model_adapters import ModelLoadError, UnknownModelError


class RewardClock:
    """Seconds spent in the audit's stages (``AuditReward.__call__``) since the last ``take``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self._original = AuditReward.__call__
        clock = self

        def timed(reward: AuditReward, *args: Any, **kwargs: Any) -> list[float]:
            start = time.perf_counter()
            try:
                return clock._original(reward, *args, **kwargs)
            finally:
                synchronize()
                clock.seconds += time.perf_counter() - start
                clock.calls += 1

        AuditReward.__call__ = timed  # type: ignore[method-assign]

    def take(self) -> tuple[float, int]:
        seconds, calls, self.seconds, self.calls = self.seconds, self.calls, 0.0, 0
        return seconds, calls


def step_timer(clock: RewardClock, steps: list[dict[str, Any]], save):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            synchronize()
            clock.take()
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            synchronize()
            reward_seconds, calls = clock.take()
            seconds = time.perf_counter() - self.started
            steps.append({
                "step": state.global_step,
                "seconds": round(seconds, 2),
                "reward_seconds": round(reward_seconds, 2),
                "reward_calls": calls,
                "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None,
            })
            print(json.dumps(steps[-1]), flush=True)
            save()

        def on_log(self, args, state, control, logs=None, **kwargs):
            """trl's figures for the step just timed, saved at once: a run that fails a step later keeps them."""
            if not logs or "step_time" not in logs or not steps or steps[-1]["step"] != state.global_step:
                return
            steps[-1].update(
                trl_step_time=round(logs["step_time"], 2), completion_length=logs.get("completions/mean_length"),
                grad_norm=logs.get("grad_norm"), loss=logs.get("loss"),
            )
            save()

    return StepTimer()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--auditor", default="random-gemma3-4b")
    parser.add_argument("--target", default="random-paligemma2-3b-448")
    parser.add_argument("--references", nargs="+", default=["random-qwen2.5-vl-7b"])
    parser.add_argument("--config", default="recipes/configs/auditor_gemma3_4b_lora.yaml", help="the auditor recipe")
    parser.add_argument("--steps", type=int, default=4, help="GRPO steps (the first one warms up)")
    parser.add_argument("--batch", type=int, default=16, help="completions per step (per_device_train_batch_size)")
    parser.add_argument("--generations", type=int, default=8, help="completions per image (num_generations)")
    parser.add_argument("--images", type=int, default=64, help="photos in the training pool")
    parser.add_argument("--completion-tokens", type=int, default=96, help="tokens per completion (max_completion_length)")
    parser.add_argument("--answer-tokens", type=int, default=8, help="tokens per answer of the target and the references")
    parser.add_argument("--json", type=Path, nargs="*", default=[])
    parser.add_argument(
        "--no-placeholder-mask", action="store_true",
        help="leave the image placeholders in the scored distribution (a diagnosis: see auditdm_eval/training/placeholders.py)",
    )
    parser.add_argument(
        "--torch-log-probs", action="store_true",
        help="score completions with trl's torch ops instead of its Triton kernels (a diagnosis; the CPU path)",
    )
    parser.add_argument("--detect-anomaly", action="store_true", help="torch.autograd.detect_anomaly(): name the op that made a NaN")
    parser.add_argument(
        "--diagnose", nargs="*", choices=list(VARIANTS), metavar="VARIANT",
        help="recompute the first step's loss and gradient under these variants (all when none is named: "
        f"{', '.join(VARIANTS)}; gradient_diagnosis.py), record where a gradient is not finite, and stop",
    )
    parser.add_argument(
        "--random-advantages", action="store_true",
        help="with --diagnose: standard-normal advantages in place of the step's, so the gradient is not zero when rewards tie",
    )
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="more train-auditor flags, after --")
    args = parser.parse_args()
    for flag in ("steps", "batch", "generations", "images", "completion_tokens", "answer_tokens"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be 1 or more (got {getattr(args, flag)})")
    if args.random_advantages and args.diagnose is None:
        parser.error("--random-advantages changes only what --diagnose recomputes; add --diagnose")
    if args.batch % args.generations:
        parser.error(f"--batch {args.batch} must be a multiple of --generations {args.generations}")
    try:
        run(args)
    except (UnknownModelError, ModelLoadError) as error:
        parser.exit(1, f"real_size_grpo.py: {error}\n")
    except ValueError as error:  # settings train-auditor refuses (ConfigError is one), as its CLI reports them
        parser.exit(2, f"real_size_grpo.py: {error}\n")


def run(args: argparse.Namespace) -> None:
    from auditdm_eval.training.grpo import build_trainer, parse

    started = time.perf_counter()
    roles = {"auditor": args.auditor, "target": args.target, **{f"reference-{i}": name for i, name in enumerate(args.references)}}
    steps: list[dict[str, Any]] = []
    report: dict[str, Any] = {
        "machine": machine(),
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": __import__("transformers").__version__, "trl": __import__("trl").__version__,
        },
        "settings": {key: value for key, value in vars(args).items() if key != "json"},
        "models": {},
        "steps": steps,
    }

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - started, 1)
        for path in args.json:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2, default=str) + "\n")

    for role, name in roles.items():
        report["models"][role] = build(name)
        print(f"{role}: {report['models'][role]}", flush=True)
        save()
    extra = args.train_args[1:] if args.train_args[:1] == ["--"] else args.train_args
    with tempfile.TemporaryDirectory() as folder:
        make_images(Path(folder) / "photos", args.images)
        argv = [
            "--config", args.config, "--auditor", args.auditor, "--target", args.target, "--references", *args.references,
            "--modes", "question", "--images", str(Path(folder) / "photos"), "--output_dir", str(Path(folder) / "run"),
            "--max_steps", str(args.steps), "--per_device_train_batch_size", str(args.batch), "--gradient_accumulation_steps", "1",
            "--num_generations", str(args.generations), "--max_completion_length", str(args.completion_tokens),
            "--answer_max_new_tokens", str(args.answer_tokens), "--model_batch_size", str(args.batch),
            "--logging_steps", "1", "--save_strategy", "no", "--no_cache", "--no-progress", *extra,
        ]
        training = parse(argv)
        report["grpo"] = {name: getattr(training.grpo, name) for name in (
            "per_device_train_batch_size", "num_generations", "max_completion_length", "gradient_checkpointing", "bf16",
            "beta", "loss_type", "learning_rate")}
        report["grpo"]["use_peft"] = training.model.use_peft
        report["grpo"]["attn_implementation"] = training.model.attn_implementation
        clock = RewardClock()
        if args.no_placeholder_mask:
            from auditdm_eval.training import placeholders

            placeholders.mask_placeholders = lambda model, token_ids: None  # build_trainer imports it when it runs
        start = time.perf_counter()
        trainer = build_trainer(training)
        report["trainer_build_seconds"] = round(time.perf_counter() - start, 1)
        trainer.add_callback(step_timer(clock, steps, save))
        if args.diagnose is not None:  # first: the finite-gradient guard would stop the step before it is diagnosed
            diagnosis = diagnosis_callback(trainer, report, save, args.diagnose, args.random_advantages)
            trainer.callback_handler.callbacks.insert(0, diagnosis)
        report["trainable_parameters"] = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        save()
        log_probs = torch_log_probs() if args.torch_log_probs else contextlib.nullcontext()
        with torch.enable_grad(), torch.autograd.set_detect_anomaly(args.detect_anomaly), log_probs:
            trainer.train()
    timed = steps[1:] or steps
    report["mean_step_seconds_after_the_first"] = round(sum(s["seconds"] for s in timed) / len(timed), 2)
    report["mean_reward_share_after_the_first"] = round(sum(s["reward_seconds"] for s in timed) / sum(s["seconds"] for s in timed), 3)
    save()
    print(f"\n{'step':>4} {'seconds':>8} {'reward s':>9} {'peak GiB':>9} {'grad norm':>10}")
    for step in steps:
        print(f"{step['step']:>4} {step['seconds']:>8} {step['reward_seconds']:>9} {step['peak_gpu_memory_gib'] or '-':>9} {step.get('grad_norm')!s:>10}")
    print(f"({args.batch} completions of {args.completion_tokens} tokens a step; {report['seconds']} s in all)")


if __name__ == "__main__":
    main()
