"""``auditdm write-tasks``: lmms-eval task YAMLs for an audited dataset."""

from __future__ import annotations

from ._parser import command_parser


def main(argv: list[str]) -> int:
    parser = command_parser("write-tasks")
    parser.add_argument("dataset", help="audit output directory, saved dataset, or Hub dataset id")
    parser.add_argument("--name", help="task name suffix: tasks are auditdm_<name>[_<failure type>] (default: the folder name)")
    parser.add_argument("--tasks-dir", help="where to write (default: `auditdm tasks-dir`)")
    parser.add_argument("--max-new-tokens", type=int, help="answer length (default: the audit's, else 16)")
    args = parser.parse_args(argv)
    from ..harness.lmms_eval_tasks import default_tasks_dir, write_tasks

    written = write_tasks(args.dataset, args.tasks_dir or default_tasks_dir(), args.name, max_new_tokens=args.max_new_tokens)
    print(f"wrote {written.directory}")
    print(f"  task:  {written.task}")
    for failure_type, task in written.type_tasks.items():
        print(f"  type:  {task}  ({failure_type})")
    if written.group:
        print(f"  group: {written.group}")
    print(f"run: lmms-eval --model auditdm --model_args pretrained=<model> --tasks {written.task} --include_path {written.directory.parent}")
    return 0
