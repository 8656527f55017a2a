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
resume) and finished fine-tunes (a saved model is reused). Training the auditor itself (GRPO) on each
new target comes with the auditor-training work; until then the same auditor is used in every iteration.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..config import PRESETS, AuditConfig, option
from ..errors import ConfigError
from ..runner import run_audit
from ..parsing import COMMAND_LINE, build, read_yaml
from .recipe import MODEL_HELP, RECIPE_DEFAULTS, RENAMED, Recipe, recipe_groups, recipe_types
from .train import report_errors, run_recipe

PER_ITERATION = ("out", "audited", "output_dir")  # set by the loop from --workdir


@dataclass
class IterateArguments:
    iterations: int = option(2, "refinement iterations (audit, fine-tune; the next iteration audits the fine-tuned model)")
    workdir: str = option("outputs/iterate", "where iteration k writes iter<k>/audit and iter<k>/model")

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
    preset = _preset(argv)
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"--preset: unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        parser.layer({**PRESETS[preset], "preset": preset}, f"preset {preset}", explicit=False)
    return parser


def _preset(argv: list[str]) -> str | None:
    pre = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--preset")
    pre.add_argument("--recipe", "--config", dest="config")
    known, _ = pre.parse_known_args(argv)
    if known.preset:
        return known.preset
    return read_yaml(known.config).get("preset") if known.config else None


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


def iterate(base: AuditConfig, recipe: Recipe, workdir: Path, iterations: int, engine: Any = None) -> list[dict]:
    engine_name, engine_arguments = (engine.engine, engine.arguments()) if engine is not None else ("local", {})
    history = []
    current = base.target
    for k in range(1, iterations + 1):
        step = Path(workdir) / f"iter{k}"
        audit = run_audit(replace(base, target=current, out=str(step / "audit")), engine_name, engine_arguments)
        model_dir = step / "model"
        if not (model_dir / "recipe.yaml").exists():
            run_recipe(recipe.with_values(
                f"iteration {k}", model_name_or_path=current, audited=[str(step / "audit")], output_dir=str(model_dir),
            ))
        history.append({
            "iteration": k, "target": current, "failures": audit.summary["failures"], "probes": audit.summary["probes"],
            "model": str(model_dir),
        })
        current = str(model_dir)
    return history


def _main(argv: list[str]) -> int:
    audit, engine, loop, recipe = parse(argv)
    audit.check_ready()
    for row in iterate(audit, recipe, Path(loop.workdir), loop.iterations, engine):
        print(f"iteration {row['iteration']}: {row['failures']}/{row['probes']} failures of {row['target']} -> {row['model']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return report_errors("recipes/iterate.py", _main, list(sys.argv[1:] if argv is None else argv))
