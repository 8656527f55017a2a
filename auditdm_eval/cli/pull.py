"""``auditdm pull``: an audited dataset from the Hub (or a local copy of one) in the audit layout."""

from __future__ import annotations

from ._parser import command_parser


def main(argv: list[str]) -> int:
    parser = command_parser("pull")
    parser.add_argument("source", help="Hub dataset repo id, or a local folder of one")
    parser.add_argument("--out", required=True, help="directory to write (audit output layout)")
    args = parser.parse_args(argv)
    from ..publish import pull
    from ..store import load_audit

    out = pull(args.source, args.out)
    print(f"{out}: {load_audit(out).num_rows} probes")
    return 0
