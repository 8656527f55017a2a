"""Probes per second of the audit pipeline: batched vs one-at-a-time, warm vs cold cache.

Runs the real pipeline (tiny random models unless others are given) three times in one process:

1. one-at-a-time: one source image per batch, one request per model call, empty cache;
2. batched: --batch-size images per batch and per model call, empty cache;
3. warm cache: the batched run again into a new output directory, reusing run 2's cache.

Probes per second are over the audit loop (auditor, renderers, answerers, judge, shard
writing); model loading, the same for every run, is reported separately. Prints the figures
and their ratios, and writes them as JSON (--json).

    python benchmarks/throughput.py --images 16 --batch-size 8
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from auditdm_eval.config import PRESETS, AuditConfig
from auditdm_eval.runner import run_audit


def make_images(folder: Path, count: int) -> None:
    """Distinct photos: scikit-image samples, cropped at shifting offsets so every image differs."""
    import skimage.data

    names = ["astronaut", "chelsea", "coffee", "rocket", "horse", "clock", "camera", "coins"]
    for i in range(count):
        array = getattr(skimage.data, names[i % len(names)])()
        offset = 8 * (i // len(names))
        image = Image.fromarray(np.asarray(array)[offset:, offset:]).convert("RGB")
        image.save(folder / f"img{i:03d}.png")


def timed_run(config: AuditConfig) -> dict[str, float]:
    start = time.perf_counter()
    result = run_audit(config)
    total = time.perf_counter() - start
    probes = result.stats.written
    return {
        "probes": probes,
        "loop_seconds": round(result.stats.seconds, 3),
        "total_seconds": round(total, 3),
        "probes_per_second": round(probes / result.stats.seconds, 3),
        "probes_per_second_with_loading": round(probes / total, 3),
        "answer_cache_hits": result.answer_cache_hits,
        "answer_cache_misses": result.answer_cache_misses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--modes", default="question")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tiny = dict(PRESETS["tiny"])
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "images").mkdir()
        make_images(tmp / "images", args.images)
        base = AuditConfig(
            target=tiny.pop("target"),
            references=tiny.pop("references"),
            auditor=tiny.pop("auditor"),
            images=str(tmp / "images"),
            out="",
            **{k: v for k, v in tiny.items() if k not in {"images", "modes"}},
            modes=args.modes.split(","),
            progress=False,
        )
        # build and load the tiny checkpoints once so no run pays for building them
        run_audit(base.with_overrides(out=str(tmp / "warmup"), limit=1, cache_dir=str(tmp / "cache-warmup")))
        runs = {
            "one_at_a_time": base.with_overrides(out=str(tmp / "o1"), batch_size=1, model_batch_size=1, render_batch_size=1, cache_dir=str(tmp / "c1")),
            "batched": base.with_overrides(out=str(tmp / "o2"), batch_size=args.batch_size, model_batch_size=args.batch_size, render_batch_size=args.batch_size, cache_dir=str(tmp / "c2")),
            "warm_cache": base.with_overrides(out=str(tmp / "o3"), batch_size=args.batch_size, model_batch_size=args.batch_size, render_batch_size=args.batch_size, cache_dir=str(tmp / "c2")),
        }
        figures = {}
        for name, config in runs.items():
            figures[name] = timed_run(config)
    report = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch_threads": torch.get_num_threads(),
        "images": args.images,
        "modes": args.modes,
        "batch_size": args.batch_size,
        "runs": figures,
        "batched_vs_one_at_a_time": round(figures["batched"]["probes_per_second"] / figures["one_at_a_time"]["probes_per_second"], 2),
        "warm_vs_cold_cache": round(figures["warm_cache"]["probes_per_second"] / figures["batched"]["probes_per_second"], 2),
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
