"""Speed of the audit's stages at the real sizes of the paper's models, on a GPU.

The models are the ``random-*`` checkpoints of :mod:`model_adapters.random_real`: the published
configs of Gemma3-4B (the auditor), PaliGemma2-3B-448 (the target) and Qwen2.5-VL-7B (a reference)
with random weights, built once (on the GPU, in bfloat16), saved, and loaded back through the
adapters a real checkpoint goes through. Every text they write is exactly its ``max_new_tokens``
long, so the figures do not depend on what random weights happen to say.

The stages are the audit's own classes (``auditor:question -> answer:target -> answer:reference
-> judge``), built from their specs as an engine builds them, and called over chunks of
``batch size`` probes, each stage timed on its own. Each batch size gets its own photos, so no
answer comes from the cache (the report counts its hits: 0). A warm-up chunk runs first.

Reported: per model, its build (0 when it was on disk), disk size, parameters and load seconds;
per batch size, each stage's seconds, probes/s and generated tokens/s, the chain's probes/s, the
GPU's peak memory, and the lengths of what was written (the check that lengths were fixed).
Images are resized and normalised on the model's device (``--images-on-cpu``: on the CPU). The
run stops starting new batch sizes after ``--budget-seconds`` and writes its JSON after each one.

    python benchmarks/real_size.py --json benchmarks/results/real-size-h200.json
    python benchmarks/real_size.py --plot benchmarks/results/real-size-h200.png \
        --from-json benchmarks/results/real-size-h200.json benchmarks/results/real-size-h200-large-batches.json
    python benchmarks/real_size.py --auditor tiny-gemma3 --target tiny-paligemma2 --reference tiny-qwen2.5-vl \\
        --batch-sizes 1 4 --images 8 --single-images 2          # the same script on tiny models, on a CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import machine, make_images  # a sibling module: this folder is on sys.path when a script here runs
from PIL import Image

from auditdm_eval.plan import AuditPlan, batched
from auditdm_eval.records import SourceImage, WorkItem
from auditdm_eval.resources import ModelRef, Resources
from auditdm_eval.stages import Stage, prepare
from auditdm_eval.stages.answer import AnswerSpec
from auditdm_eval.stages.auditor import AuditorSpec
from auditdm_eval.stages.judge import JudgeSpec
from model_adapters import GenerationSettings, ModelLoadError, UnknownModelError, resolve


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def disk_gb(path: Path) -> float:
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9, 2)


def photos(folder: Path, first: int, count: int) -> list[SourceImage]:
    make_images(folder, count, first)
    return [SourceImage(f"photo-{i}", Image.open(folder / f"img{i:03d}.png").convert("RGB")) for i in range(first, first + count)]


def build(name: str) -> dict[str, Any]:
    """Resolve (and, the first time, build and save) ``name``."""
    start = time.perf_counter()
    path, _ = resolve(name)
    return {"name": name, "path_resolve_seconds": round(time.perf_counter() - start, 2), "disk_gb": disk_gb(Path(path))}


def loaded_model(stage: Stage):
    return stage.generator.model.load()  # type: ignore[attr-defined]


def run_chain_timed(stages: list[Stage], items: list[WorkItem], batch_size: int) -> tuple[list[WorkItem], dict[str, float]]:
    seconds = dict.fromkeys((stage.name for stage in stages), 0.0)
    done: list[WorkItem] = []
    for chunk in batched(items, batch_size):
        for stage in stages:
            start = time.perf_counter()
            chunk = stage(chunk)
            synchronize()
            seconds[stage.name] += time.perf_counter() - start
        done.extend(chunk)
    return done, seconds


def word_counts(texts: list[str]) -> list[int]:
    counts = [len(text.split()) for text in texts]
    return [min(counts), max(counts)] if counts else []


def plot(reports: list[dict[str, Any]], path: Path) -> None:
    """Probes per second of each stage and of the chain against the batch size, every run's points."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[tuple[int, float]]] = {}
    for report in reports:
        for trial in report["trials"]:
            rates = {name: rate for name, rate in trial["probes_per_second"].items() if name != "judge"}
            for name, rate in {**rates, "the chain": trial["chain_probes_per_second"]}.items():
                series.setdefault(name, []).append((trial["batch_size"], rate))
    for name, points in series.items():
        points.sort()
        axes.plot(*zip(*points), marker="o", linestyle="-" if name == "the chain" else "--", label=name)
    axes.set(xscale="log", yscale="log", xlabel="probes per model call (batch size)", ylabel="probes per second")
    axes.set_title(f"Audit stages at real sizes, random weights: {reports[0]['machine'].split(', GPU ')[-1]}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--auditor", default="random-gemma3-4b")
    parser.add_argument("--target", default="random-paligemma2-3b-448")
    parser.add_argument("--reference", nargs="+", default=["random-qwen2.5-vl-7b"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--images", type=int, default=64, help="probes per batch size above 1")
    parser.add_argument("--single-images", type=int, default=8, help="probes at batch size 1")
    parser.add_argument("--question-tokens", type=int, default=48, help="tokens the auditor writes per question")
    parser.add_argument("--answer-tokens", type=int, default=8, help="tokens each answer has")
    parser.add_argument("--budget-seconds", type=float, default=420, help="start no batch size after this")
    parser.add_argument(
        "--images-on-cpu", action="store_true", help="process images on the CPU, not on the model's device (the comparison)"
    )
    parser.add_argument("--json", type=Path, nargs="*", default=[])
    parser.add_argument("--plot", type=Path, help="a PNG of probes per second against the batch size")
    parser.add_argument("--from-json", type=Path, nargs="+", help="plot these reports instead of running")
    args = parser.parse_args()
    if args.from_json:
        if not args.plot:
            parser.error("--from-json draws a chart: give --plot PATH.png")
        missing = [str(path) for path in args.from_json if not path.is_file()]
        if missing:
            parser.error(f"no such report: {', '.join(missing)} (pass the JSON files an earlier run wrote with --json)")
        plot([json.loads(path.read_text()) for path in args.from_json], args.plot)
        return
    counts = {"--batch-sizes": min(args.batch_sizes), "--images": args.images, "--single-images": args.single_images,
              "--question-tokens": args.question_tokens, "--answer-tokens": args.answer_tokens}
    for flag, value in counts.items():
        if value < 1:
            parser.error(f"{flag} must be 1 or more (got {value})")
    try:
        run(args)
    except (UnknownModelError, ModelLoadError) as error:
        parser.exit(1, f"real_size.py: {error}\n")


def run(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    roles = {"auditor": args.auditor, "target": args.target, **{f"reference-{i}": name for i, name in enumerate(args.reference)}}
    report: dict[str, Any] = {
        "machine": machine(),
        "versions": {
            "python": platform.python_version(), "torch": torch.__version__,
            "transformers": __import__("transformers").__version__,
        },
        "settings": {key: value for key, value in vars(args).items() if key not in {"json", "plot", "from_json"}},
        "models": {},
        "trials": [],
    }

    def save() -> None:
        report["seconds"] = round(time.perf_counter() - started, 1)
        for path in args.json:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report, indent=2) + "\n")

    for role, name in roles.items():
        report["models"][role] = build(name)
        print(f"{role}: {report['models'][role]}", flush=True)
        save()
    resources = Resources()
    biggest = max(args.batch_sizes)

    def ref(name: str) -> ModelRef:
        return ModelRef(name, batch_size=biggest)

    answer = GenerationSettings(max_new_tokens=args.answer_tokens)
    stages = [
        AuditorSpec(ref(args.auditor), "question", settings=GenerationSettings(max_new_tokens=args.question_tokens)).build(resources),
        AnswerSpec(ref(args.target), "target", answer).build(resources),
        *(AnswerSpec(ref(name), "reference", answer).build(resources) for name in args.reference),
        JudgeSpec(agreement="majority").build(resources),
    ]
    for role, stage in zip(roles, stages):
        before = resources.clock.seconds["load"]
        prepare(stage)
        model = loaded_model(stage)
        model.images_on_device = model.images_on_device and not args.images_on_cpu
        report["models"][role].update(
            load_seconds=round(resources.clock.seconds["load"] - before, 2),
            parameters=sum(p.numel() for p in model.model.parameters()),
            dtype=str(model.dtype), device=str(model.device), images_on_device=model.images_on_device,
        )
        print(f"{role}: {report['models'][role]}", flush=True)
    save()
    plan = AuditPlan(run_id="real-size", modes=("question",), stages=())
    with tempfile.TemporaryDirectory() as folder:
        first = 0

        def probes(count: int) -> list[WorkItem]:
            nonlocal first
            sources = photos(Path(folder), first, count)
            first += count
            return [plan.work_item(source, "question", 0) for source in sources]

        run_chain_timed(stages, probes(min(biggest, 4)), biggest)  # warm-up: first kernels, allocator
        for batch_size in args.batch_sizes:
            if time.perf_counter() - started > args.budget_seconds:
                report["stopped"] = f"budget of {args.budget_seconds} s spent before batch size {batch_size}"
                break
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            items = probes(args.single_images if batch_size == 1 else args.images)
            hits_before = resources.cache_counts()[0]
            done, seconds = run_chain_timed(stages, items, batch_size)
            tokens = {stages[0].name: args.question_tokens, **{stage.name: args.answer_tokens for stage in stages[1:-1]}}
            trial = {
                "batch_size": batch_size,
                "probes": len(done),
                "failed": sum(item.failure is not None for item in done),
                "answer_cache_hits": resources.cache_counts()[0] - hits_before,
                "seconds": {name: round(value, 3) for name, value in seconds.items()},
                "probes_per_second": {name: round(len(done) / value, 2) for name, value in seconds.items() if value},
                "generated_tokens_per_second": {name: round(len(done) * tokens[name] / seconds[name], 1) for name in tokens},
                "chain_probes_per_second": round(len(done) / sum(seconds.values()), 3),
                "words_written": {
                    "question": word_counts([item.question or "" for item in done]),
                    "target": word_counts([item.target.raw for item in done if item.target]),
                },
                "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if torch.cuda.is_available() else None,
            }
            report["trials"].append(trial)
            print(json.dumps(trial), flush=True)
            save()
    save()
    print(f"\n{'batch':>5} {'probes':>6} " + " ".join(f"{stage.name[:26]:>27}" for stage in stages[:-1]) + f" {'chain/s':>8}")
    for trial in report["trials"]:
        rates = " ".join(f"{trial['probes_per_second'].get(stage.name, 0):>27}" for stage in stages[:-1])
        print(f"{trial['batch_size']:>5} {trial['probes']:>6} {rates} {trial['chain_probes_per_second']:>8}")
    print(f"(probes per second of each stage; {report['seconds']} s in all)")
    if args.plot:
        plot([report], args.plot)


if __name__ == "__main__":
    main()
