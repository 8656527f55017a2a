"""``auditdm combine``: several audits of one target (an auditor's checkpoints) as one de-duplicated dataset."""

from __future__ import annotations

from ._parser import command_parser


def main(argv: list[str]) -> int:
    parser = command_parser("combine")
    parser.add_argument("audits", nargs="+", help="audit folders (the first one listed keeps a probe found twice)")
    parser.add_argument("--out", required=True, help="the combined audit's folder")
    parser.add_argument("--overwrite", action="store_true", help="replace a different run found in --out")
    args = parser.parse_args(argv)
    from ..combine import combine_audits

    combined = combine_audits(args.audits, args.out, args.overwrite)
    for source, kept in combined.per_source.items():
        print(f"  {source}: {kept} probe(s) kept")
    print(f"wrote {combined.probes} distinct probes to {combined.out} ({combined.duplicates} duplicate(s) dropped)")
    return 0
