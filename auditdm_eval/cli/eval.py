"""``auditdm eval``: a benchmark suite through lmms-eval or VLMEvalKit with our adapters."""

from __future__ import annotations

from pathlib import Path

from ._parser import command_parser, csv


def main(argv: list[str]) -> int:
    parser = command_parser("eval")
    parser.add_argument("--suite", default="paper16", help="paper16, paligemma8 or gemma8")
    parser.add_argument("--model", help="registered name, local path or Hub id (not needed with --plan)")
    parser.add_argument("--harness", choices=["lmms-eval", "vlmeval"], default="lmms-eval")
    parser.add_argument("--benchmarks", type=csv, help="only these benchmarks of the suite (comma-separated)")
    parser.add_argument("--out", default="eval-results", help="the harness's output directory")
    parser.add_argument("--limit", type=int, help="at most this many items per benchmark")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--local-data", action="store_true", help="vlmeval: use the TSVs in $LMUData as they are (no md5 check, no download)")
    parser.add_argument("--plan", action="store_true", help="print the benchmark -> harness task and metric mapping and stop")
    args = parser.parse_args(argv)
    from ..harness.run_eval import EvalRequest, run_eval
    from ..harness.suite import plan_suite

    plan = plan_suite(args.suite, args.harness, args.benchmarks)
    if args.plan:
        print(plan.describe())
        return 0
    if not args.model:
        raise ValueError("--model is required to run a suite (only --plan runs without one)")
    request = EvalRequest(
        args.suite, args.model, args.harness, Path(args.out), args.benchmarks, args.limit,
        args.batch_size, args.device, args.dtype, args.local_data,
    )
    _, code = run_eval(request)
    return code
