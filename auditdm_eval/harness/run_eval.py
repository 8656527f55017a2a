"""``auditdm eval``: a suite of standard benchmarks through a harness, with our adapters.

Both harnesses exit 0 when a benchmark fails (lmms-eval logs the error; VLMEvalKit records it in
its status.json): the exit code here comes from what they wrote. lmms-eval: the run's results
file must exist and hold every planned task with scored samples; VLMEvalKit: see
:func:`.vlmeval_launcher.failed_datasets`.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .suite import SuitePlan, plan_suite


@dataclass
class EvalRequest:
    suite: str
    model: str
    harness: str
    out: Path
    benchmarks: list[str] | None = None
    limit: int | None = None
    batch_size: int = 8
    device: str = "auto"
    dtype: str = "auto"
    local_data: bool = False  # vlmeval: use TSVs already in $LMUData as they are


def lmms_eval_command(request: EvalRequest, plan: SuitePlan) -> list[str]:
    model_args = f"pretrained={request.model},device={request.device},dtype={request.dtype}"
    command = [
        sys.executable, "-m", "lmms_eval",
        "--model", "auditdm",
        "--model_args", model_args,
        "--tasks", ",".join(plan.names),
        "--batch_size", str(request.batch_size),
        "--output_path", str(request.out),
        "--log_samples",
    ]
    if request.limit:
        command += ["--limit", str(request.limit)]
    return command


def vlmeval_command(request: EvalRequest, plan: SuitePlan) -> list[str]:
    command = [
        sys.executable, "-m", "auditdm_eval.harness.vlmeval_launcher",
        "--model", request.model,
        "--data", *plan.names,
        "--work-dir", str(request.out),
        "--batch-size", str(request.batch_size),
        "--device", request.device,
        "--dtype", request.dtype,
    ]
    if request.limit:
        command += ["--limit", str(request.limit)]
    if request.local_data:
        command.append("--local-data")
    return command


COMMAND_BUILDERS = {"lmms-eval": lmms_eval_command, "vlmeval": vlmeval_command}


def lmms_eval_failures(out: Path, tasks: list[str], since: float) -> list[str]:
    """Why the lmms-eval run that started at ``since`` failed, one line per problem (none: it did not)."""
    files = [p for p in out.rglob("*_results.json") if p.stat().st_mtime >= since - 1]
    runs = [json.loads(p.read_text()) for p in sorted(files, key=lambda p: p.stat().st_mtime)]
    runs = [run for run in runs if isinstance(run, dict) and "results" in run]
    if not runs:
        return [f"lmms-eval wrote no results under {out}: the run failed (its log above names the error)"]
    latest = runs[-1]
    problems = []
    for task in tasks:
        result = latest["results"].get(task)
        samples = latest.get("n-samples", {}).get(task, {}).get("effective")
        scores = [v for k, v in (result or {}).items() if "," in k and "_stderr" not in k and isinstance(v, (int, float))]
        if result is None:
            problems.append(f"{task}: no result")
        elif samples == 0 or not scores or all(isinstance(v, float) and math.isnan(v) for v in scores):
            problems.append(f"{task}: produced no score ({samples or 0} samples)")
    return problems


def run_eval(request: EvalRequest) -> tuple[SuitePlan, int]:
    plan = plan_suite(request.suite, request.harness, request.benchmarks)
    print(plan.describe(), file=sys.stderr)
    if not plan.names:
        return plan, 0
    request.out.mkdir(parents=True, exist_ok=True)
    command = COMMAND_BUILDERS[request.harness](request, plan)
    print("running: " + " ".join(command), file=sys.stderr)
    started = time.time()
    code = subprocess.call(command)
    if request.harness == "lmms-eval":
        problems = lmms_eval_failures(request.out, plan.names, started)
        for problem in problems:
            print(f"auditdm eval: {problem}", file=sys.stderr)
        if problems and code == 0:
            code = 1
    return plan, code
