"""The refinement loop of supplement A.4: audit the current model, fine-tune it on what the audit
found, and audit the fine-tuned model again (the paper runs two iterations).

One parser (trl's TrlParser) reads the audit's own settings (every `auditdm audit` flag: --target,
--ensemble, --auditor, --images, --mode, --probes-per-image, --preset, --engine, ...), the recipe's
(ours, trl's SFTConfig, trl's ModelConfig: --recipe <yaml> names the file, any field is a flag too)
and the loop's (--iterations, --workdir). A field both sides have is one flag setting both: --seed
(the audit's sampling and training), --dtype, --trust_remote_code.

Each iteration writes <workdir>/iter<k>/audit and <workdir>/iter<k>/model: passing --out, --audited
or --output_dir is an error here, and a recipe file's output_dir is ignored. The first target is --target,
or the recipe's model_name_or_path when --target is not given. A rerun skips finished audits (they
resume) and finished fine-tunes (a saved model is reused).

With --auditor_recipe <train-auditor config> (recipes/configs/auditor_*.yaml), each iteration first
trains the auditor with GRPO against that iteration's target (<workdir>/iter<k>/auditor, starting
from the previous iteration's auditor, with the loop's references and agreement rule; the rest from
the config), then audits with it: supplement A.4's train the auditor -> audit -> fine-tune. Without
it the same auditor serves every iteration. A trained auditor on disk is reused on a rerun.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import PRESETS, AuditConfig, option, preset_in
from ..errors import ConfigError
from ..parsing import COMMAND_LINE, build, read_yaml
from ..runner import run_audit
from .recipe import MODEL_HELP, RECIPE_DEFAULTS, RENAMED, Recipe, recipe_groups, recipe_types
from .train import report_errors, run_recipe

PER_ITERATION = ("out", "audited", "output_dir")  # set by the loop from --workdir


@dataclass
class IterateArguments:
    iterations: int = option(2, "refinement iterations (audit, fine-tune; the next iteration audits the fine-tuned model)")
    workdir: str = option("outputs/iterate", "where iteration k writes iter<k>/audit and iter<k>/model")
    auditor_recipe: str | None = option(
        None, "a train-auditor config (recipes/configs/auditor_*.yaml): train the auditor with GRPO against each "
        "iteration's target (iter<k>/auditor) before auditing it; none: the same auditor every iteration"
    )

    def __post_init__(self) -> None:
        if self.iterations < 1:
            raise ConfigError(f"--iterations must be at least 1 (got {self.iterations})")


def iterate_parser(argv: list[str]):
    from ..engines import EngineConfig
    from ..parsing import DescriptionAndDefaultsFormatter, make_layered_parser

    parser = make_layered_parser(
        [AuditConfig, EngineConfig, IterateArguments, *recipe_types()],
        groups={
            AuditConfig: "audit (the flags of `auditdm audit`)", EngineConfig: "audit engine",
            IterateArguments: "refinement loop", **recipe_groups(),
        },
        aliases={"model_name_or_path": ["--model"]},
        helps={"model_name_or_path": MODEL_HELP + "; here: the first target when --target is not given"},
        renamed=RENAMED,
        config_flags=("--recipe", "--config"),
        config_help="the recipe (recipes/configs/): a YAML file of field: value, audit and loop fields allowed too; flags override it",
        prog="recipes/iterate.py", description=__doc__, formatter_class=DescriptionAndDefaultsFormatter,
    )
    parser.layer(RECIPE_DEFAULTS, "recipe defaults", explicit=False)
    preset, _ = preset_in(argv, config_flags=("--recipe", "--config"))
    if preset is not None:
        parser.layer({**PRESETS[preset], "preset": preset}, f"preset {preset}", explicit=False)
    return parser


def parse(argv: list[str]) -> tuple[AuditConfig, Any, IterateArguments, Recipe]:
    """The audit's settings, the engine's, the loop's and the recipe, from one command line."""
    from ..engines import EngineConfig

    parser = iterate_parser(argv)
    values = parser.parse(argv)
    explicit = parser.explicit
    per_iteration = [name for name in PER_ITERATION if explicit.get(name) == COMMAND_LINE or (name == "audited" and name in explicit)]
    if per_iteration:
        raise ConfigError(
            f"{', '.join('--' + name for name in per_iteration)}: set by the loop for each iteration "
            "(<workdir>/iter<k>/audit and <workdir>/iter<k>/model); pass --workdir instead"
        )
    audit = build(AuditConfig, values)
    engine = build(EngineConfig, values)
    loop = build(IterateArguments, values)
    target = audit.target or values.get("model_name_or_path")
    if not target:
        raise ConfigError("no target: pass --target, or a recipe with model_name_or_path")
    audit = replace(audit, target=target)
    recipe = Recipe.from_values({**values, "model_name_or_path": target}, explicit)
    return audit, engine, loop, recipe


def train_auditor_against(target: str, auditor: str, base: AuditConfig, auditor_recipe: str, out: Path) -> str:
    """The auditor trained with GRPO against ``target`` into ``out`` (a finished one is reused, an interrupted one resumes)."""
    from ..training.grpo import parse as parse_training
    from ..training.grpo import train_auditor

    values = {
        "target": target, "auditor": auditor, "references": base.references, "agreement_rule": base.agreement_rule,
        "output_dir": str(out),
    }
    if not read_yaml(auditor_recipe).get("images"):
        values["images"] = base.images
    train_auditor(parse_training(["--config", auditor_recipe], values))
    return str(out)


def iterate(
    base: AuditConfig, recipe: Recipe, workdir: Path, iterations: int, engine: Any = None, auditor_recipe: str | None = None,
) -> list[dict]:
    engine_name, engine_arguments = (engine.engine, engine.arguments()) if engine is not None else ("local", {})
    history = []
    current, auditor = base.target, base.auditor
    for k in range(1, iterations + 1):
        step = Path(workdir) / f"iter{k}"
        if auditor_recipe:
            auditor = train_auditor_against(current, auditor, base, auditor_recipe, step / "auditor")
        audit = run_audit(replace(base, target=current, auditor=auditor, out=str(step / "audit")), engine_name, engine_arguments)
        model_dir = step / "model"
        if not (model_dir / "recipe.yaml").exists():
            run_recipe(recipe.with_values(
                f"iteration {k}", model_name_or_path=current, audited=[str(step / "audit")], output_dir=str(model_dir),
            ))
        history.append({
            "iteration": k, "target": current, "auditor": auditor, "failures": audit.summary["failures"],
            "probes": audit.summary["probes"], "model": str(model_dir),
        })
        current = str(model_dir)
    return history


def _main(argv: list[str]) -> int:
    audit, engine, loop, recipe = parse(argv)
    audit.check_ready()
    for row in iterate(audit, recipe, Path(loop.workdir), loop.iterations, engine, loop.auditor_recipe):
        print(
            f"iteration {row['iteration']}: {row['failures']}/{row['probes']} failures of {row['target']} "
            f"(auditor {row['auditor']}) -> {row['model']}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    return report_errors("recipes/iterate.py", _main, list(sys.argv[1:] if argv is None else argv))
