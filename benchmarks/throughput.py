"""Speed of the audit pipeline on the tiny models, as ratios from one run of this script.

Every run is the real pipeline (``run_audit``) over folders of distinct photos, in one process:

- ``one_at_a_time``: one image per batch and one request per model or renderer call, empty cache;
- ``batched``: ``--batch-size`` images per batch and requests per call, empty cache (the cold run);
- ``warm_cache``: ``batched`` again into a new output directory, with ``batched``'s cache (three
  times per repeat);
- ``scale_2x``, ``scale_4x``: ``batched`` over twice and four times the images, empty caches;
- ``ray``, ``ray_4x``: ``batched`` with ``--engine ray`` on a local Ray instance of 2 CPUs, empty
  caches, at 1x and 4x the images (run once each: every Ray run starts its actors afresh).

Each local configuration runs ``--repeats`` times (fresh directories and caches) and the best is
kept: on a shared machine the best of a few is the least disturbed. Times are the engine's loop
(``RunStats.seconds``: reading images, models, renderers, judging, writing shards; loading a model
counts where it happens and is reported as ``load``). The ratios compare the loop without model
loading (``steady``: a start-up cost, the same whatever the batching or the number of images, and
overlapped with reading the first images); ``ratios_with_model_loading`` gives them with it. Reported:

- ``batched_vs_one_at_a_time``: one-at-a-time / batched (target >= 4);
- ``warm_vs_cold_cache``: batched / warm (target >= 10; a warm run loads no model at all);
- ``ray_vs_local`` (``ray_vs_local_4x``): local batched wall time / Ray wall time at 1x (4x), both
  the whole ``run_audit``, Ray's start and its actors' start included (> 1: Ray is faster);
- ``linearity_2x``, ``linearity_4x``: time per image at 2x and 4x the images against 1x (target:
  within 15% of linear, 0.85 to 1.15); ``scaling_loop_seconds`` gives the loop times;
- ``overhead`` (``overhead_4x``): of the batched run at 1x (4x), 1 - (model + render seconds) /
  steady seconds, the share outside model and renderer calls (target <= 0.20).

    python benchmarks/throughput.py --modes question --images 16 --batch-size 8
    python benchmarks/throughput.py --modes question,regenerate,edit --json benchmarks/results/x.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from common import machine, make_images  # a sibling module: this folder is on sys.path when a script here runs

from auditdm_eval.config import PRESETS, AuditConfig
from auditdm_eval.engines import RunStats
from auditdm_eval.runner import run_audit

TARGETS = {"batched_vs_one_at_a_time": 4.0, "warm_vs_cold_cache": 10.0, "linearity_4x": 1.15, "overhead": 0.20}
def figures(stats: RunStats, wall: float) -> dict[str, Any]:
    busy = {kind: round(seconds, 4) for kind, seconds in sorted(stats.busy_seconds.items())}
    return {
        "probes": stats.written,
        "loop_seconds": round(stats.seconds, 4),
        "wall_seconds": round(wall, 4),
        "probes_per_second": round(stats.written / stats.seconds, 2) if stats.seconds else None,
        "busy_seconds": busy,
        "overhead": round(1 - sum(busy.values()) / stats.seconds, 4) if stats.seconds else None,
        "first_results_seconds": round(stats.first_results_seconds, 3),
        "answer_cache_hits": stats.answer_cache_hits,
        "answer_cache_misses": stats.answer_cache_misses,
    }


def timed(config: AuditConfig, engine: str = "local", arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    start = time.perf_counter()
    result = run_audit(config, engine, arguments)
    return figures(result.stats, time.perf_counter() - start)


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    chosen = min(runs, key=lambda run: run["loop_seconds"])
    return {**chosen, "repeats": len(runs), "loop_seconds_all": [run["loop_seconds"] for run in runs]}


def steady(run: dict[str, Any]) -> float:
    """Loop seconds without loading the models: a start-up cost, the same whatever the batching and
    the number of images (and overlapped with reading the first images)."""
    return run["loop_seconds"] - run["busy_seconds"].get("load", 0.0)


def outside(run: dict[str, Any]) -> float:
    """Share of the steady loop outside model and renderer calls: the pipeline's overhead."""
    busy = run["busy_seconds"].get("model", 0.0) + run["busy_seconds"].get("render", 0.0)
    return 1 - busy / steady(run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16, help="images at 1x")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--modes", default="question")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each local configuration; the best is kept")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch's intra-op threads (default: torch's own)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray run")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    load_before = os.getloadavg()
    tiny = dict(PRESETS["tiny"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for scale in (1, 2, 4):  # 2x and 4x add new photos to the 1x ones
            make_images(tmp / f"images-{scale}x", args.images * scale)
        base = AuditConfig(
            target=tiny.pop("target"), references=tiny.pop("references"), auditor=tiny.pop("auditor"),
            images=str(tmp / "images-1x"), out="", modes=args.modes.split(","), progress=False,
            **{k: v for k, v in tiny.items() if k not in {"images", "modes"}},
        )
        batched = dict(batch_size=args.batch_size, model_batch_size=args.batch_size, render_batch_size=args.batch_size)
        single = dict(batch_size=1, model_batch_size=1, render_batch_size=1)
        run_audit(base.with_overrides(out=str(tmp / "warmup"), limit=2, cache_dir=str(tmp / "cache-warmup")))  # build the checkpoints

        def fresh(name: str, repeat: int, **overrides: Any) -> AuditConfig:
            return base.with_overrides(out=str(tmp / f"{name}-{repeat}"), cache_dir=str(tmp / f"cache-{name}-{repeat}"), **overrides)

        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in ("one_at_a_time", "batched", "warm_cache", "scale_2x", "scale_4x")}
        for repeat in range(args.repeats):
            runs["one_at_a_time"].append(timed(fresh("single", repeat, **single)))
            cold = fresh("batched", repeat, **batched)
            runs["batched"].append(timed(cold))
            for again in range(3):  # a warm run takes milliseconds: more tries for the same cost
                runs["warm_cache"].append(timed(cold.with_overrides(out=str(tmp / f"warm-{repeat}-{again}"))))
            for scale in (2, 4):
                runs[f"scale_{scale}x"].append(timed(fresh(f"scale{scale}", repeat, images=str(tmp / f"images-{scale}x"), **batched)))
        report_runs = {name: best(results) for name, results in runs.items()}
        if not args.no_ray:
            ray_arguments = {"ray_num_cpus": 2, "ray_batch_size": args.batch_size}
            report_runs["ray"] = timed(fresh("ray", 0, **batched), "ray", ray_arguments)
            report_runs["ray_4x"] = timed(fresh("ray4", 0, images=str(tmp / "images-4x"), **batched), "ray", ray_arguments)
    one, cold, warm = report_runs["one_at_a_time"], report_runs["batched"], report_runs["warm_cache"]
    x2, x4 = report_runs["scale_2x"], report_runs["scale_4x"]
    ratios = {
        "batched_vs_one_at_a_time": round(steady(one) / steady(cold), 2),
        "warm_vs_cold_cache": round(steady(cold) / steady(warm), 2),
        "linearity_2x": round(steady(x2) / (2 * steady(cold)), 3),
        "linearity_4x": round(steady(x4) / (4 * steady(cold)), 3),
        "overhead": round(outside(cold), 4),
        "overhead_4x": round(outside(x4), 4),
    }
    with_loading = {  # the same, model loading included (it is the same in every local run; a warm run skips it)
        "batched_vs_one_at_a_time": round(one["loop_seconds"] / cold["loop_seconds"], 2),
        "warm_vs_cold_cache": round(cold["loop_seconds"] / warm["loop_seconds"], 2),
        "linearity_4x": round(x4["loop_seconds"] / (4 * cold["loop_seconds"]), 3),
        "overhead": cold["overhead"],
    }
    if "ray" in report_runs:
        ray1, ray4 = report_runs["ray"], report_runs["ray_4x"]
        ratios["ray_vs_local"] = round(cold["wall_seconds"] / ray1["wall_seconds"], 3)
        ratios["ray_vs_local_4x"] = round(x4["wall_seconds"] / ray4["wall_seconds"], 3)
    report = {
        "machine": machine(),
        "conditions": {
            "torch_threads": torch.get_num_threads(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
            "versions": {"python": platform.python_version(), "torch": torch.__version__},
        },
        "images": args.images,
        "modes": args.modes,
        "batch_size": args.batch_size,
        "ratios": ratios,
        "ratios_with_model_loading": with_loading,
        "targets": TARGETS,
        "met": {
            "batched_vs_one_at_a_time": ratios["batched_vs_one_at_a_time"] >= TARGETS["batched_vs_one_at_a_time"],
            "warm_vs_cold_cache": ratios["warm_vs_cold_cache"] >= TARGETS["warm_vs_cold_cache"],
            "linearity_4x": abs(ratios["linearity_4x"] - 1) <= TARGETS["linearity_4x"] - 1,
            "overhead": ratios["overhead"] <= TARGETS["overhead"],
        },
        "scaling_loop_seconds": {"1x": cold["loop_seconds"], "2x": x2["loop_seconds"], "4x": x4["loop_seconds"]},
        "runs": report_runs,
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
