"""``auditdm tasks-dir``: the default lmms-eval ``--include_path`` of written tasks."""

from __future__ import annotations

from ._parser import command_parser


def main(argv: list[str]) -> int:
    command_parser("tasks-dir").parse_args(argv)
    from ..harness.lmms_eval_tasks import default_tasks_dir

    print(default_tasks_dir())
    return 0
