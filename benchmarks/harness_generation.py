"""Generation time of the same audited items through lmms-eval and through VLMEvalKit.

Audits N source images in all three modes with the embedded default's tiny models (3N probes, all
answerable with one reference), writes the lmms-eval tasks and registers the VLMEvalKit dataset,
then, in one process, for each model:

- lmms-eval: ``simple_evaluate`` with the ``auditdm`` model on ``auditdm_<audit>``; timed: the
  model's ``generate_until`` (all requests of the run);
- VLMEvalKit: ``infer_data_job`` (its own inference loop) with our model on ``AuditDM_<audit>``;
  timed: the model's ``generate`` calls, summed.

Model loading is excluded from both. Each harness runs once to warm up, then --repeats times,
alternating; wall-clock and CPU seconds are reported per run, with the minimum (the run least
disturbed by other processes: the figure to compare on a shared machine) and the median, and the
VLMEvalKit / lmms-eval ratios of both. The answers of the two harnesses are compared item by item. Works against any revision of the harness code (run it with PYTHONPATH pointing at a checkout
of the revision to measure).

    python benchmarks/harness_generation.py --images 24 --json benchmarks/results/harness-generation-tiny-cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


class Timer:
    """Wall-clock and CPU seconds (this process, all threads) spent inside ``with`` blocks. On a
    shared machine the wall clock also counts other processes' load; CPU time counts our work."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._start = (time.perf_counter(), time.process_time())

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._start[0]
        self.cpu += time.process_time() - self._start[1]


def build_audit(root: Path, images: int) -> Path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import make_images

    from auditdm_eval.config import PRESETS, AuditConfig
    from auditdm_eval.runner import run_audit

    folder = root / "images"
    folder.mkdir()
    make_images(folder, images)
    preset = dict(PRESETS["tiny"])
    preset.update(images=str(folder), out=str(root / "audit"), cache_dir=str(root / "cache"), progress=False)
    run_audit(AuditConfig(**preset))
    return root / "audit"


def lmms_eval_run(model: str, tasks_dir: Path, task: str, batch_size: int) -> tuple[float, dict[str, str]]:
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    from auditdm_eval.harness import lmms_eval_model

    seconds = Timer()
    original = lmms_eval_model.AuditDMModel.generate_until

    def timed(self, requests):
        with seconds:
            return original(self, requests)

    lmms_eval_model.AuditDMModel.generate_until = timed
    try:
        results = evaluator.simple_evaluate(
            model="auditdm", model_args=f"pretrained={model}", tasks=[task], batch_size=batch_size,
            task_manager=TaskManager("WARNING", include_path=str(tasks_dir)), log_samples=True,
        )
    finally:
        lmms_eval_model.AuditDMModel.generate_until = original
    answers = {}
    for samples in results["samples"].values():
        for sample in samples:
            answers[sample["doc"]["probe_id"]] = sample["resps"][0][0] if isinstance(sample["resps"][0], list) else sample["resps"][0]
    return seconds, answers


def vlmeval_run(vlm, model_name: str, dataset_name: str, work: Path) -> tuple[float, dict[str, str]]:
    import pandas as pd
    from vlmeval.dataset import build_dataset
    from vlmeval.inference import infer_data_job

    dataset = build_dataset(dataset_name)
    seconds = Timer()
    original = vlm.generate

    def timed(message, dataset=None):
        with seconds:
            return original(message, dataset=dataset)

    vlm.generate = timed
    try:
        work.mkdir(parents=True)
        infer_data_job(vlm, str(work), model_name, dataset)
    finally:
        vlm.generate = original
    predictions = pd.read_csv(next(work.glob(f"{model_name}_{dataset_name}.tsv")), sep="\t")
    return seconds, dict(zip(predictions["probe_id"], predictions["prediction"].fillna("").astype(str)))


def code_revision() -> str:
    import auditdm_eval

    root = Path(auditdm_eval.__file__).resolve().parents[1]
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True).stdout.strip()
    return (done.stdout.strip() or os.environ.get("HARNESS_REVISION", "unknown")) + (" + working tree" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24, help="source images (3 probes each)")
    parser.add_argument("--models", default="tiny-gemma3-seed1,tiny-paligemma2")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: least disturbed by a loaded machine)")
    parser.add_argument("--label", default="", help="what code is measured (e.g. before / after)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("PRED_FORMAT", "tsv")  # as auditdm-vlmeval sets it
    torch.set_num_threads(args.threads)

    from auditdm_eval.harness.lmms_eval_tasks import write_tasks
    from auditdm_eval.harness.vlmeval_launcher import register
    from vlmeval.config import supported_VLM

    work = Path(tempfile.mkdtemp(prefix="harness-bench-"))
    os.environ.setdefault("LMUData", str(work / "LMUData"))
    Path(os.environ["LMUData"]).mkdir(parents=True, exist_ok=True)
    audit = build_audit(work, args.images)
    written = write_tasks(str(audit), work / "tasks", name="bench")
    task = written.task
    figures = []
    for model in args.models.split(","):
        model_names, data_names = register([model], [str(audit)], {"batch_size": args.batch_size}, False)
        vlm = supported_VLM[model_names[0]]()  # loaded once, outside the timings
        times = {"lmms_eval": {"wall": [], "cpu": []}, "vlmeval": {"wall": [], "cpu": []}}
        for repeat in range(args.repeats + 1):  # run 0 warms up; the order alternates
            for harness in ("lmms_eval", "vlmeval") if repeat % 2 else ("vlmeval", "lmms_eval"):
                if harness == "lmms_eval":
                    lmms_timer, lmms_answers = lmms_eval_run(model, work / "tasks", task, args.batch_size)
                else:
                    vlm_timer, vlm_answers = vlmeval_run(vlm, model_names[0], data_names[0], work / f"vlmeval-{model}-{repeat}")
            if repeat:
                for harness, timer in (("lmms_eval", lmms_timer), ("vlmeval", vlm_timer)):
                    times[harness]["wall"].append(round(timer.wall, 3))
                    times[harness]["cpu"].append(round(timer.cpu, 3))
        same = sum(lmms_answers[p] == vlm_answers.get(p) for p in lmms_answers)
        summary = {stat: {h: {k: fn(v) for k, v in t.items()} for h, t in times.items()}
                   for stat, fn in (("min", min), ("median", statistics.median))}
        row = {
            "model": model,
            "items": len(lmms_answers),
            "lmms_eval_generation_seconds": times["lmms_eval"],
            "vlmeval_generation_seconds": times["vlmeval"],
            **{f"{stat}_seconds": values for stat, values in summary.items()},
            "vlmeval_over_lmms_eval": {
                f"{stat}_{k}": round(values["vlmeval"][k] / values["lmms_eval"][k], 2)
                for stat, values in summary.items() for k in ("wall", "cpu")
            },
            "same_answers": f"{same}/{len(lmms_answers)}",
        }
        print(json.dumps(row), flush=True)
        figures.append(row)
    report = {
        "label": args.label,
        "code": code_revision(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "device": "cuda" if torch.cuda.is_available() else "cpu",
                    "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"images": args.images, "modes": ["question", "regenerate", "edit"], "batch_size": args.batch_size,
                     "repeats": args.repeats, "torch_threads": args.threads},
        "models": figures,
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
