"""``auditdm eval``: a suite of standard benchmarks through a harness, with our adapters."""

from __future__ import annotations

import subprocess
import sys
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


def run_eval(request: EvalRequest) -> tuple[SuitePlan, int]:
    plan = plan_suite(request.suite, request.harness, request.benchmarks)
    print(plan.describe(), file=sys.stderr)
    if not plan.names:
        return plan, 0
    request.out.mkdir(parents=True, exist_ok=True)
    command = COMMAND_BUILDERS[request.harness](request, plan)
    print("running: " + " ".join(command), file=sys.stderr)
    return plan, subprocess.call(command)
