"""``auditdm push``: publish an audited dataset to the Hugging Face Hub with a dataset card."""

from __future__ import annotations

from pathlib import Path

from ._parser import command_parser


def main(argv: list[str]) -> int:
    parser = command_parser("push")
    parser.add_argument("dataset", help="audit output directory")
    parser.add_argument("repo_id", help="Hub dataset repo, e.g. my-org/auditdm-paligemma2-3b")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--license", default="other", help="license id for the card (e.g. cc-by-4.0)")
    parser.add_argument("--reviewed-share", type=float, help="fraction of pairs a person reviewed (0-1)")
    parser.add_argument("--auditor-checkpoint", help="the auditor checkpoint, when it differs from --auditor")
    parser.add_argument("--folder", help="where to build the upload folder (default: <dataset>/hub)")
    parser.add_argument("--dry-run", action="store_true", help="build the folder and stop")
    args = parser.parse_args(argv)
    from ..publish import build_upload_folder, push

    folder = build_upload_folder(
        args.dataset, args.folder or Path(args.dataset) / "hub", args.repo_id, args.license, args.reviewed_share, args.auditor_checkpoint
    )
    print(f"built {folder} (README.md card, manifest.json, data/)")
    if args.dry_run:
        return 0
    url = push(folder, args.repo_id, private=args.private)  # token: HF_TOKEN or the saved login
    print(f"pushed to {url}")
    return 0
