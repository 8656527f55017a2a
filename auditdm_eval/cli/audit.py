"""``auditdm audit``: discover target failures.

Flags and a ``--config`` YAML derive from :class:`~auditdm_eval.config.AuditConfig` and
:class:`~auditdm_eval.engines.EngineConfig` (trl's ``TrlParser``). Values come in layers: a preset,
then the YAML file, then the flags. With no model given at all, the embedded default preset runs.
"""

from __future__ import annotations

from ..config import DEFAULT_PRESET, PRESETS, AuditConfig, preset_in, preset_notice
from ..engines import EngineConfig
from ..parsing import DescriptionAndDefaultsFormatter, build, make_layered_parser
from ._help import HELP

RESUMES = "an audit run again with the same --out resumes, skipping the probes already written"
MODEL_KEYS = ("target", "references", "auditor")
MODEL_FLAGS = ("--target", "--references", "--ensemble", "--reference", "--auditor")


def chosen_preset(argv: list[str]) -> str | None:
    """--preset, else the config file's preset, else the embedded default when no model is named anywhere."""
    preset, from_file = preset_in(argv)
    models_given = any(arg.split("=")[0] in MODEL_FLAGS for arg in argv) or any(key in from_file for key in MODEL_KEYS)
    return preset or (None if models_given else DEFAULT_PRESET)


def parse(argv: list[str]) -> tuple[AuditConfig, EngineConfig]:
    parser = make_layered_parser(
        [AuditConfig, EngineConfig], groups={AuditConfig: "audit", EngineConfig: "engine"},
        prog="auditdm audit", description=HELP["audit"], formatter_class=DescriptionAndDefaultsFormatter,
    )
    preset = chosen_preset(argv)
    if preset is not None:
        parser.layer({**PRESETS[preset], "preset": preset}, f"preset {preset}", explicit=False)
    values = parser.parse(argv)
    return build(AuditConfig, values), build(EngineConfig, values)


def main(argv: list[str]) -> int:
    from rich.console import Console

    config, engine = parse(argv)  # before the models' libraries load: --help and bad flags answer at once
    from ..runner import run_audit

    config.check_ready()
    console = Console(stderr=True, soft_wrap=True)
    notice = preset_notice(config)
    if notice is not None:
        console.print(f"[bold yellow]{notice}[/]")
    result = run_audit(config, engine.engine, engine.arguments())
    print_summary(result, console)
    return audited_nothing(result, console)


def audited_nothing(result, console) -> int:
    """0 when the audit holds probes; else say why there are none (each unusable input with its fix) and
    give the exit code: 1 when probes failed at a later stage, else 2 (the inputs were at fault)."""
    if result.summary["probes"]:
        return 0
    skipped = result.skipped_inputs
    others = result.summary["issues"] - len(skipped)
    console.print(f"[bold red]no probe was written to {result.out}: nothing in --images could be audited[/]")
    for issue in skipped[:10]:
        console.print(f"[red]  {issue.source_id}: {issue.message} -> {issue.fix}[/]")
    if others:
        console.print(f"[red]  {others} probe(s) failed at a later stage: see {result.out}/issues.jsonl[/]")
    return 1 if others else 2


def print_summary(result, console) -> None:
    from rich.table import Table

    table = Table(title=f"audit of {result.summary['config']['target']} -> {result.out}")
    for column in ("mode", "probes", "ensemble agrees", "failures", "failure rate"):
        table.add_column(column)
    for mode, row in sorted(result.summary["per_mode"].items()):
        table.add_row(mode, str(row["probes"]), str(row["ensemble_agrees"]), str(row["failures"]), f"{row['failure_rate']:.1%}")
    console.print(table)
    stats = result.stats
    console.print(
        f"wrote {stats.written} probes in {len(stats.shards)} shard(s); {stats.skipped_done} already on disk"
        f"{' (resumed)' if result.resumed else ''}; {result.summary['issues']} issue(s) in issues.jsonl; "
        f"answer cache: {result.answer_cache_hits} hits, {result.answer_cache_misses} misses"
    )
    if result.skipped_inputs:
        first = "; ".join(f"{issue.source_id} ({issue.message})" for issue in result.skipped_inputs[:5])
        more = f" and {len(result.skipped_inputs) - 5} more" if len(result.skipped_inputs) > 5 else ""
        console.print(f"[yellow]skipped {len(result.skipped_inputs)} input(s): {first}{more}[/]")
    for path in result.moved_aside:
        console.print(f"[yellow]moved the unreadable shard {path} aside; its probes were audited again[/]")
    console.print(f"read it back: datasets.load_dataset('parquet', data_dir='{result.out}/data', split='test')")
