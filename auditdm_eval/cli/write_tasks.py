"""``auditdm write-tasks``: lmms-eval task YAMLs for an audited dataset."""

from __future__ import annotations

from ._parser import command_parser


def main(argv: list[str]) -> int:
    parser = command_parser("write-tasks")
    parser.add_argument("dataset", help="audit output directory, saved dataset, Hub dataset id, or a task folder written before")
    parser.add_argument("--name", help="tasks are auditdm_<name> (the group) and auditdm.<name>.<failure type> (default: the audit's own name, its target)")
    parser.add_argument("--tasks-dir", help="where to write (default: `auditdm tasks-dir`: tasks/ inside this repository, else $AUDITDM_HOME/lmms_eval_tasks)")
    parser.add_argument("--max-new-tokens", type=int, help="answer length (default: the audit's, else 16)")
    args = parser.parse_args(argv)
    from ..harness.lmms_eval_tasks import default_tasks_dir, write_tasks

    written = write_tasks(args.dataset, args.tasks_dir or default_tasks_dir(), args.name, max_new_tokens=args.max_new_tokens)
    print(f"wrote {shown(written.directory)}/ ({written.probes} probes the reference ensemble agreed on; audit id {written.identity.audit_id})")
    if written.replaced:
        print(f"  replaced the tasks of another audit named {written.identity.name!r} (id {written.replaced}); pass --name to keep both")
    print(f"  group: {written.group}  (the whole audit: accuracy and failure rate over every probe, each scored once)")
    for failure_type, task in written.type_tasks.items():
        print(f"  type:  {task}  ({failure_type})")
    print(f'run: lmms-eval --model auditdm --model_args pretrained=<model> --tasks "auditdm_*" --include_path {shown(written.directory.parent)}')
    return 0


def shown(path) -> str:
    """A path relative to here when it is below here, else absolute."""
    import os

    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)
