"""``auditdm leaderboard``: tables and plots from lmms-eval / VLMEvalKit result files."""

from __future__ import annotations

from ._parser import command_parser


def main(argv: list[str]) -> int:
    parser = command_parser("leaderboard")
    parser.add_argument("results", nargs="+", help="lmms-eval --output_path and/or VLMEvalKit --work-dir directories")
    parser.add_argument("--out", required=True)
    parser.add_argument("--base", help="model the deltas are taken against")
    parser.add_argument("--title", default="AuditDM leaderboard")
    args = parser.parse_args(argv)
    from ..leaderboard import make_leaderboard, to_markdown

    board = make_leaderboard(args.results, args.out, args.base, args.title)
    print(to_markdown(board.table, board.deltas))
    print("written: " + ", ".join(str(p) for p in board.files))
    return 0
