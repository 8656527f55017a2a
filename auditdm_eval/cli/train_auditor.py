"""``auditdm train-auditor``: GRPO training of the auditor (see :mod:`auditdm_eval.training.grpo`)."""

from __future__ import annotations

import sys

RESUMES = "train-auditor run again with the same settings and --output_dir resumes from its last checkpoint"


def main(argv: list[str]) -> int:
    from ..training.grpo import checkpoints, parse, train_auditor

    run = parse(argv)
    trained = train_auditor(run, announce=lambda line: print(line, file=sys.stderr, flush=True))
    curve = trained.reward_curve()
    if curve:
        first, last = curve[0][1], curve[-1][1]
        print(f"disagreement reward {first:.3f} (step {curve[0][0]}) -> {last:.3f} (step {curve[-1][0]})")
    print(f"trained {trained.steps} step(s); the auditor is in {trained.output_dir}")
    for checkpoint in checkpoints(trained.output_dir):
        print(f"  checkpoint: {checkpoint}")
    print(f"audit with it: auditdm audit --auditor {trained.output_dir} ...")
    return 0
