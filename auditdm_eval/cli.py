"""``auditdm`` command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from .config import PRESETS, TINY_NOTICE, AuditConfig


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def add_audit_arguments(parser: argparse.ArgumentParser) -> None:
    models = parser.add_argument_group("models (registered name, local path or Hub id)")
    models.add_argument("--target", help="the model being audited")
    who = models.add_mutually_exclusive_group()
    who.add_argument("--ensemble", type=_csv, help="reference ensemble, comma-separated (target excluded)")
    who.add_argument("--reference", help="one reference model: the paper's model-comparison mode")
    models.add_argument("--auditor", help="the VLM that writes questions, captions and edit commands")
    models.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset (default: tiny when no models are given)")
    models.add_argument("--trust-remote-code", action="store_true", default=None)
    data = parser.add_argument_group("images")
    data.add_argument("--images", help="folder of images, hf:<hub id or saved dataset>, or skimage:<names>")
    data.add_argument("--split")
    data.add_argument("--image-column")
    data.add_argument("--question-column", help="original questions: used as Q on regenerated/edited images")
    data.add_argument("--answer-column")
    data.add_argument("--id-column")
    data.add_argument("--limit", type=int, help="audit at most this many source images")
    data.add_argument("--min-image-side", type=int)
    audit = parser.add_argument_group("audit")
    audit.add_argument("--mode", dest="modes", type=_csv, help="question, regenerate, edit (comma-separated)")
    audit.add_argument("--prompt-variant", choices=["auditdm", "baseline"])
    audit.add_argument("--probes-per-image", type=int)
    audit.add_argument("--matcher", choices=["exact", "embedding", "judge"])
    audit.add_argument("--matcher-model", help="embedding model (matcher=embedding) or judge VLM (matcher=judge)")
    audit.add_argument("--agreement", dest="agreement_rule", choices=["unanimous", "majority"])
    audit.add_argument("--reward", choices=["binary", "graded"])
    audit.add_argument("--no-source-questions", dest="use_source_questions", action="store_false", default=None)
    audit.add_argument("--seed", type=int)
    render = parser.add_argument_group("renderers (diffusers pipelines: alias, local path or Hub id)")
    render.add_argument("--regenerate-model")
    render.add_argument("--edit-model")
    render.add_argument("--render-size", type=int)
    render.add_argument("--render-steps", type=int)
    run = parser.add_argument_group("run")
    run.add_argument("--out", help="output directory (default ./auditdm-out)")
    run.add_argument("--overwrite", action="store_true", default=None, help="replace a different run in --out")
    run.add_argument("--batch-size", type=int, help="source images per batch and per shard")
    run.add_argument("--model-batch-size", type=int)
    run.add_argument("--render-batch-size", type=int)
    run.add_argument("--answer-max-new-tokens", type=int)
    run.add_argument("--auditor-max-new-tokens", type=int)
    run.add_argument("--dtype", choices=["auto", "float32", "float16", "bfloat16"])
    run.add_argument("--device")
    run.add_argument("--cache-dir", help="answer/render cache (default $AUDITDM_HOME/cache, shared by runs)")
    run.add_argument("--no-cache", action="store_true", default=None)
    run.add_argument("--no-progress", dest="show_progress", action="store_false", default=None)


def config_from_args(args: argparse.Namespace) -> tuple[AuditConfig, bool]:
    """The config the arguments describe, and whether the embedded tiny default was chosen."""
    given_models = any(getattr(args, name) for name in ("target", "ensemble", "reference", "auditor"))
    preset_name = args.preset or (None if given_models else "tiny")
    preset = dict(PRESETS.get(preset_name, {}))
    references = args.ensemble or ([args.reference] if args.reference else None)
    base = AuditConfig(
        target=preset.pop("target", ""),
        references=preset.pop("references", []),
        auditor=preset.pop("auditor", ""),
        images=preset.pop("images", ""),
        out="auditdm-out",
        **preset,
    )
    overrides = {
        name: getattr(args, name, None)
        for name in AuditConfig.__dataclass_fields__
        if name not in {"references"} and getattr(args, name, None) is not None
    }
    config = base.with_overrides(references=references, **overrides)
    missing = [flag for flag, value in (("--target", config.target), ("--auditor", config.auditor), ("--images", config.images)) if not value]
    if missing:
        raise SystemExit(f"auditdm audit: missing {', '.join(missing)} (or pass --preset, or no model arguments for the tiny demo)")
    return config, preset_name == "tiny"


def cmd_audit(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .runner import ConfigError, run_audit
    from .store import RunMismatchError

    console = Console(stderr=True, soft_wrap=True)
    config, is_tiny = config_from_args(args)
    if is_tiny:
        console.print(f"[bold yellow]{TINY_NOTICE}[/]")
    try:
        result = run_audit(config)
    except (ConfigError, RunMismatchError, ValueError) as error:
        console.print(f"[bold red]error:[/] {error}")
        return 2
    print_summary(result, console)
    return 0


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
    console.print(f"read it back: datasets.load_dataset('parquet', data_dir='{result.out}/data', split='test')")


def cmd_models(args: argparse.Namespace) -> int:
    from model_adapters import list_models

    for spec in list_models():
        print(f"{spec.name:24s} {spec.path or '(built locally)':40s} {spec.description}")
    return 0


def add_write_tasks_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="audit output directory, saved dataset, Hub dataset id, or a task folder written before")
    parser.add_argument("--name", help="tasks are auditdm_<name> (the group) and auditdm.<name>.<failure type> (default: the audit's own name, its target)")
    parser.add_argument("--tasks-dir", help="where to write (default: `auditdm tasks-dir`: tasks/ inside this repository, else $AUDITDM_HOME/lmms_eval_tasks)")
    parser.add_argument("--max-new-tokens", type=int, help="answer length (default: the audit's, else 16)")


def cmd_write_tasks(args: argparse.Namespace) -> int:
    import os

    from .harness.lmms_eval_tasks import default_tasks_dir, write_tasks

    try:
        written = write_tasks(args.dataset, args.tasks_dir or default_tasks_dir(), args.name, max_new_tokens=args.max_new_tokens)
    except (ValueError, FileNotFoundError) as error:
        print(f"auditdm write-tasks: {error}", file=sys.stderr)
        return 2
    folder = os.path.relpath(written.directory)
    folder = folder if not folder.startswith("..") else str(written.directory)
    print(f"wrote {folder}/ ({written.probes} probes the reference ensemble agreed on; audit id {written.identity.audit_id})")
    if written.replaced:
        print(f"  replaced the tasks of another audit named {written.identity.name!r} (id {written.replaced}); pass --name to keep both")
    print(f"  group: {written.group}  (the whole audit: accuracy and failure rate over every probe, each scored once)")
    for failure_type, task in written.type_tasks.items():
        print(f"  type:  {task}  ({failure_type})")
    include = os.path.relpath(written.directory.parent)
    include = include if not include.startswith("..") else str(written.directory.parent)
    print(f'run: lmms-eval --model auditdm --model_args pretrained=<model> --tasks "auditdm_*" --include_path {include}')
    return 0


def cmd_tasks_dir(args: argparse.Namespace) -> int:
    from .harness.lmms_eval_tasks import default_tasks_dir

    print(default_tasks_dir())
    return 0


def add_eval_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suite", default="paper16", help="paper16, paligemma8 or gemma8")
    parser.add_argument("--model", help="registered name, local path or Hub id (not needed with --plan)")
    parser.add_argument("--harness", choices=["lmms-eval", "vlmeval"], default="lmms-eval")
    parser.add_argument("--benchmarks", type=_csv, help="only these benchmarks of the suite (comma-separated)")
    parser.add_argument("--out", default="eval-results", help="the harness's output directory")
    parser.add_argument("--limit", type=int, help="at most this many items per benchmark")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--local-data", action="store_true", help="vlmeval: use the TSVs in $LMUData as they are (no md5 check, no download)")
    parser.add_argument("--plan", action="store_true", help="print the benchmark -> harness task and metric mapping and stop")


def cmd_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .harness.run_eval import EvalRequest, run_eval
    from .harness.suite import plan_suite

    try:
        plan = plan_suite(args.suite, args.harness, args.benchmarks)
    except ValueError as error:
        print(f"auditdm eval: {error}", file=sys.stderr)
        return 2
    if args.plan:
        print(plan.describe())
        return 0
    if not args.model:
        print("auditdm eval: --model is required to run a suite (only --plan runs without one)", file=sys.stderr)
        return 2
    request = EvalRequest(
        args.suite, args.model, args.harness, Path(args.out), args.benchmarks, args.limit,
        args.batch_size, args.device, args.dtype, args.local_data,
    )
    _, code = run_eval(request)
    return code


def add_push_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="audit output directory")
    parser.add_argument("repo_id", help="Hub dataset repo, e.g. my-org/auditdm-paligemma2-3b")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--license", default="other", help="license id for the card (e.g. cc-by-4.0)")
    parser.add_argument("--reviewed-share", type=float, help="fraction of pairs a person reviewed (0-1)")
    parser.add_argument("--auditor-checkpoint", help="the auditor checkpoint, when it differs from --auditor")
    parser.add_argument("--folder", help="where to build the upload folder (default: <dataset>/hub)")
    parser.add_argument("--dry-run", action="store_true", help="build the folder and stop")


def cmd_push(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .publish import build_upload_folder, push

    folder = build_upload_folder(
        args.dataset, args.folder or Path(args.dataset) / "hub", args.repo_id, args.license, args.reviewed_share, args.auditor_checkpoint
    )
    print(f"built {folder} (README.md card, manifest.json, data/)")
    if args.dry_run:
        return 0
    url = push(folder, args.repo_id, private=args.private)  # token: HF_TOKEN or the saved login
    print(f"pushed to {url}")
    return 0


def add_pull_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="Hub dataset repo id, or a local folder of one")
    parser.add_argument("--out", required=True, help="directory to write (audit output layout)")


def cmd_pull(args: argparse.Namespace) -> int:
    from .publish import pull
    from .store import load_audit

    out = pull(args.source, args.out)
    print(f"{out}: {load_audit(out).num_rows} probes")
    return 0


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="audit output directory")
    parser.add_argument("--compare", help="a second audit (another target) for the side-by-side chart")
    parser.add_argument("--out", help="where to write report.md and the PNG plots (default: <dataset>/report)")
    parser.add_argument("--embedding-fallback", action="store_true", help="place questions no rule claims by embedding similarity")
    parser.add_argument("--write-types", action="store_true", help="store the types in the dataset's failure_type column")


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .failure_types import EmbeddingTypeClassifier
    from .report import make_report, write_types

    if args.write_types:
        typed = write_types(args.dataset, EmbeddingTypeClassifier() if args.embedding_fallback else None)
        print(f"typed {typed} probes in {args.dataset}")
    report = make_report(args.dataset, args.out or Path(args.dataset) / "report", args.compare, args.embedding_fallback)
    print(report.markdown.read_text())
    print(f"written: {report.markdown}, " + ", ".join(str(p) for p in report.plots))
    return 0


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", nargs="+", help="lmms-eval --output_path and/or VLMEvalKit --work-dir directories")
    parser.add_argument("--out", required=True)
    parser.add_argument("--base", help="model the deltas are taken against")
    parser.add_argument("--title", default="AuditDM leaderboard")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .leaderboard import make_leaderboard, to_markdown

    board = make_leaderboard(args.results, args.out, args.base, args.title)
    print(to_markdown(board.table, board.deltas))
    print("written: " + ", ".join(str(p) for p in board.files))
    return 0


def add_review_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", help="audit output directory; labels go to <dataset>/labels.jsonl")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--all", dest="include_all", action="store_true", help="show every probe, not only the failures")


def cmd_review(args: argparse.Namespace) -> int:
    from .review import serve

    server = serve(args.dataset, args.port, args.include_all)
    print(f"reviewing {args.dataset} at http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None] | None, Callable[[argparse.Namespace], int]]] = {
    "audit": ("discover target failures: auditor -> renderer -> answerers -> judge", add_audit_arguments, cmd_audit),
    "models": ("list registered model names", None, cmd_models),
    "write-tasks": ("write lmms-eval auditdm_* task YAMLs for an audited dataset", add_write_tasks_arguments, cmd_write_tasks),
    "eval": ("run a benchmark suite (paper16) through lmms-eval or VLMEvalKit with our adapters", add_eval_arguments, cmd_eval),
    "report": ("failure types, per-type failure rates, plots and review statistics", add_report_arguments, cmd_report),
    "review": ("label audited pairs by hand in a local web page (Table 3)", add_review_arguments, cmd_review),
    "leaderboard": ("tables and plots from lmms-eval / VLMEvalKit result files", add_leaderboard_arguments, cmd_leaderboard),
    "push": ("publish an audited dataset to the Hugging Face Hub with a dataset card", add_push_arguments, cmd_push),
    "pull": ("download an audited dataset from the Hub (or copy a local one)", add_pull_arguments, cmd_pull),
    "tasks-dir": ("print the default lmms-eval --include_path for written tasks", None, cmd_tasks_dir),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="auditdm", description="AuditDM: audit VLMs for capability gaps")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, handler) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        if add_arguments:
            add_arguments(command)
        command.set_defaults(handler=handler)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        quiet_libraries()
    return args.handler(args)


def quiet_libraries() -> None:
    """Keep the run's own progress bar; hide the libraries' per-load and per-shard bars and info logs."""
    import datasets
    import diffusers
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()


if __name__ == "__main__":
    sys.exit(main())
