"""``auditdm-vlmeval``: VLMEvalKit's own ``run.py`` with our models and audited datasets registered.

VLMEvalKit has no plugin mechanism, so registration happens in-process before its ``main()``:
- ``--model`` takes our model names (registered name, local path, Hub id); each becomes a
  VLMEvalKit model of that name (``/`` replaced by ``__``).
- ``--data`` takes VLMEvalKit dataset names and audit output dirs, task folders written by
  ``auditdm write-tasks`` or Hub dataset ids; the latter become ``AuditDM_<name>`` datasets, named
  after the audit as lmms-eval's ``auditdm_<name>`` is (see :mod:`.identity`).
- Our models are batched (``--batch-size``, default 8) although VLMEvalKit asks one item at a time:
  see :mod:`.vlmeval_model`.
- ``--judge`` defaults to ``exact_matching`` (the default judge is an API model).
- ``--local-data`` uses standard datasets' TSVs found in $LMUData as they are, without the md5
  check that would otherwise re-download them.
Every other argument goes to VLMEvalKit unchanged. VLMEvalKit reuses predictions it finds in
``<work-dir>/<model>/`` even without ``--reuse``: use a fresh ``--work-dir`` per evaluation. Its
``main()`` logs a failing dataset and goes on; this launcher then exits 1 and names it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from functools import partial
from pathlib import Path


def vlmeval_model_name(model: str) -> str:
    return model.rstrip("/").replace("/", "__")


def audited_dataset_name(name: str) -> str:
    """VLMEvalKit's name for the audit called ``name`` (see :func:`.identity.identify`)."""
    return "AuditDM_" + re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def is_audited_source(data: str) -> bool:
    path = Path(data)
    return (path / "data").is_dir() or (not path.exists() and "/" in data and not data.startswith("/"))


def register(models: list[str], data: list[str], model_kwargs: dict, local_data: bool) -> tuple[list[str], list[str]]:
    from vlmeval import config as vlmeval_config
    from vlmeval import dataset as vlmeval_dataset

    from .vlmeval_dataset import AuditDMDataset
    from .vlmeval_model import AuditDMVLM

    if AuditDMDataset not in vlmeval_dataset.DATASET_CLASSES:
        vlmeval_dataset.DATASET_CLASSES.insert(0, AuditDMDataset)
    model_names = []
    for model in models:
        name = vlmeval_model_name(model)
        vlmeval_config.supported_VLM[name] = partial(AuditDMVLM, model=model, **model_kwargs)
        model_names.append(name)
    from .identity import identify

    data_names = []
    for item in data:
        if is_audited_source(item):
            identity = identify(item)
            data_names.append(AuditDMDataset.register(audited_dataset_name(identity.name), item, identity))
        else:
            data_names.append(item)
            if local_data:
                _trust_local_tsv(item, vlmeval_dataset.DATASET_CLASSES)
    return model_names, data_names


def _trust_local_tsv(name: str, classes) -> None:
    from vlmeval.smp import LMUDataRoot

    if not (Path(LMUDataRoot()) / f"{name}.tsv").exists():
        raise FileNotFoundError(f"--local-data: {LMUDataRoot()}/{name}.tsv does not exist; place the dataset's TSV there")
    for cls in classes:
        md5s = getattr(cls, "DATASET_MD5", None)
        if isinstance(md5s, dict) and name in md5s:
            md5s.pop(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True)
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--work-dir", default="./outputs")
    parser.add_argument("--judge", default="exact_matching")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--local-data", action="store_true")
    args, passthrough = parser.parse_known_args(argv)
    os.environ.setdefault("PRED_FORMAT", "tsv")  # no spreadsheet engine needed to read predictions back
    model_kwargs = {"batch_size": args.batch_size, "device": args.device, "dtype": args.dtype, "max_new_tokens": args.max_new_tokens}
    model_names, data_names = register(args.model, args.data, model_kwargs, args.local_data)
    from vlmeval import run

    sys.argv = ["vlmeval", "--model", *model_names, "--data", *data_names, "--work-dir", args.work_dir, "--judge", args.judge, *passthrough]
    run.main()
    failed = failed_datasets(Path(args.work_dir), model_names)
    for model, dataset, reason in failed:
        print(f"auditdm-vlmeval: {model} x {dataset} failed: {reason}", file=sys.stderr)
    return 1 if failed else 0


def failed_datasets(work_dir: Path, model_names: list[str]) -> list[tuple[str, str, str]]:
    """(model, dataset, reason) for each dataset VLMEvalKit's status.json records as failed."""
    import json

    failed = []
    for model in model_names:
        status = work_dir / model / "status.json"
        if not status.exists():
            failed.append((model, "*", f"no {status}"))
            continue
        for dataset, entry in json.loads(status.read_text()).get("datasets", {}).items():
            reason = entry.get("error_message") or entry.get("skip_reason")
            if reason and reason != "-":
                failed.append((model, dataset, str(reason)))
    return failed


if __name__ == "__main__":
    sys.exit(main())
