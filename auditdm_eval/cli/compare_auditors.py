"""``auditdm compare-auditors``: auditors' failure-search success on a held-out pool (see :mod:`auditdm_eval.compare`)."""

from __future__ import annotations

from ..config import AuditConfig
from ..engines import EngineConfig
from ..parsing import DescriptionAndDefaultsFormatter, build, make_layered_parser
from ._help import HELP

DEFAULTS = {"out": "auditor-comparison", "progress": False}


def parse(argv: list[str]) -> tuple[list[str], AuditConfig, EngineConfig]:
    from .. import compare

    parser = make_layered_parser(
        [AuditConfig, EngineConfig], groups={AuditConfig: "the audit every auditor runs (the flags of `auditdm audit`)", EngineConfig: "engine"},
        prog="auditdm compare-auditors", description=f"{HELP['compare-auditors']}\n\n{compare.__doc__}",
        formatter_class=DescriptionAndDefaultsFormatter,
    )
    parser.add_argument(
        "auditors", nargs="+", metavar="AUDITOR",
        help="a model or checkpoint (name, path or Hub id), <model>@baseline for the prompt-engineering baseline, or an audit folder",
    )
    parser.layer(DEFAULTS, "compare-auditors defaults", explicit=False)
    values = parser.parse(argv)
    auditors = values.pop("auditors")
    values["auditor"] = values.get("auditor") or auditors[0]  # an AuditConfig needs one; each run sets its own
    return auditors, build(AuditConfig, values), build(EngineConfig, values)


def main(argv: list[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from ..compare import HEADER, _pct, compare_auditors, table_rows

    auditors, config, engine = parse(argv)
    comparison = compare_auditors(auditors, config, config.out, engine.engine)
    table = Table(title=f"auditors on {comparison.pool}: target {comparison.target}")
    for column in HEADER:
        table.add_column(column)
    for row in table_rows(comparison):
        table.add_row(*row)
    console = Console()
    console.print(table)
    if comparison.ceilings:
        c = comparison.ceilings
        console.print(f"question-mode ceilings over {c.scenes} scenes: scene-aware {_pct(c.scene_aware)}, blind {_pct(c.blind)} (\"{c.blind_question}\")")
    console.print("written: " + ", ".join(str(path) for path in comparison.files))
    return 0
