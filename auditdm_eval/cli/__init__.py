"""``auditdm``: the command line, one module per command.

Each command module has ``HELP`` and ``main(argv) -> int``. Errors of the project's own (and bad
values) print their message alone and exit non-zero; ``auditdm --debug <command>`` shows the
traceback too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    # name -> module in this package
    "audit": "audit",
    "models": "models",
    "train-auditor": "train_auditor",
    "compare-auditors": "compare_auditors",
    "combine": "combine",
    "write-tasks": "write_tasks",
    "tasks-dir": "tasks_dir",
    "eval": "eval",
    "report": "report",
    "review": "review",
    "leaderboard": "leaderboard",
    "push": "push",
    "pull": "pull",
}


def command_module(name: str):
    return importlib.import_module(f".{COMMANDS[name]}", __name__)


def user_errors() -> dict[type[BaseException], int]:
    """Errors whose message is the whole story, with their exit codes (checked in order)."""
    from model_adapters import ModelLoadError, UnknownModelError

    from ..errors import AuditDMError
    from ..store import CorruptShardError, StoreError

    return {
        ModelLoadError: 1, CorruptShardError: 1, AuditDMError: 2, UnknownModelError: 2, StoreError: 2, ValueError: 2,
        FileNotFoundError: 2,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auditdm", description="AuditDM: audit VLMs for capability gaps")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what loads and runs")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser.add_argument("command", choices=list(COMMANDS), metavar="command", help=", ".join(COMMANDS))
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help="the command's own arguments (auditdm <command> --help)")
    parser.epilog = "commands:\n" + "\n".join(f"  {name:18s}{command_module_help(name)}" for name in COMMANDS)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    module = None
    try:
        module = command_module(args.command)
        asks_help = any(arg in ("-h", "--help") for arg in args.arguments)
        if not args.verbose and not asks_help and not getattr(module, "NO_LIBRARIES", False):
            quiet_libraries()  # imports them (seconds): not for a command or a --help that never loads them
        return module.main(args.arguments)
    except KeyboardInterrupt:
        resumes = getattr(module, "RESUMES", None)  # how a rerun of this command picks up the work
        print(
            f"auditdm {args.command}: interrupted; what it finished is kept on disk" + (f" ({resumes})" if resumes else ""),
            file=sys.stderr,
        )
        return 130  # the shell's code for a run stopped by Ctrl-C
    except Exception as error:  # noqa: BLE001 - the project's own errors print as one message
        code = next((code for kind, code in user_errors().items() if isinstance(error, kind)), None)
        if code is None or args.debug:
            traceback.print_exc()
        if code is None:
            return 1
        print(f"auditdm {args.command}: error: {error}", file=sys.stderr)
        if not args.debug:
            print("(auditdm --debug ... shows the traceback)", file=sys.stderr)
        return code


def command_module_help(name: str) -> str:
    from . import _help

    return _help.HELP[name]


def quiet_libraries() -> None:
    """Keep the run's own progress bar; hide the libraries' per-load and per-shard bars and info logs."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        import diffusers
    except ImportError:
        return
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
