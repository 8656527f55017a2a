"""The refinement loop of supplement A.4: audit the current model, fine-tune it on what the audit
found, and audit the fine-tuned model again (the paper runs two iterations).

Each iteration writes ``<workdir>/iter<k>/audit`` and ``<workdir>/iter<k>/model``; a rerun skips
finished audits (they resume) and finished fine-tunes (a saved model is reused). Training the
auditor itself (GRPO) on each new target comes with the auditor-training work; until then the
same auditor is used in every iteration.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from ..config import AuditConfig
from ..runner import run_audit
from .train import Recipe, run_recipe


def iterate(base: AuditConfig, recipe: Recipe, workdir: Path, iterations: int) -> list[dict]:
    history = []
    current = base.target
    for k in range(1, iterations + 1):
        step = workdir / f"iter{k}"
        audit = run_audit(replace(base, target=current, out=str(step / "audit")))
        model_dir = step / "model"
        if not (model_dir / "recipe.yaml").exists():
            run_recipe(replace(recipe, model=current, audited=[str(step / "audit")], output_dir=str(model_dir)))
        history.append({"iteration": k, "target": current, "failures": audit.summary["failures"], "probes": audit.summary["probes"], "model": str(model_dir)})
        current = str(model_dir)
    return history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True)
    parser.add_argument("--ensemble", required=True, help="comma-separated reference models")
    parser.add_argument("--auditor", required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--mode", default="question", help="audit modes, comma-separated")
    parser.add_argument("--recipe", required=True, help="recipe YAML (recipes/configs/)")
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--workdir", default="outputs/iterate")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--max-steps", type=int)
    args = parser.parse_args(argv)
    base = AuditConfig(
        target=args.target, references=args.ensemble.split(","), auditor=args.auditor, images=args.images,
        out="", modes=args.mode.split(","), limit=args.limit,
    )
    recipe = Recipe.from_yaml(args.recipe, model=args.target, audited=["(set per iteration)"], max_steps=args.max_steps)
    for row in iterate(base, recipe, Path(args.workdir), args.iterations):
        print(f"iteration {row['iteration']}: {row['failures']}/{row['probes']} failures of {row['target']} -> {row['model']}")
    return 0
