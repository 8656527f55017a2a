"""``auditdm report``: failure types, per-type failure rates, plots and review statistics."""

from __future__ import annotations

from pathlib import Path

from ._parser import command_parser


def main(argv: list[str]) -> int:
    parser = command_parser("report")
    parser.add_argument("dataset", help="audit output directory")
    parser.add_argument("--compare", help="a second audit (another target) for the side-by-side chart")
    parser.add_argument("--out", help="where to write report.md and the PNG plots (default: <dataset>/report)")
    parser.add_argument("--embedding-fallback", action="store_true", help="place questions no rule claims by embedding similarity")
    parser.add_argument("--write-types", action="store_true", help="store the types in the dataset's failure_type column")
    args = parser.parse_args(argv)
    from ..failure_types import EmbeddingTypeClassifier
    from ..report import make_report, write_types

    if args.write_types:
        typed = write_types(args.dataset, EmbeddingTypeClassifier() if args.embedding_fallback else None)
        print(f"typed {typed} probes in {args.dataset}")
    report = make_report(args.dataset, args.out or Path(args.dataset) / "report", args.compare, args.embedding_fallback)
    print(report.markdown.read_text())
    print(f"written: {report.markdown}, " + ", ".join(str(p) for p in report.plots))
    return 0
