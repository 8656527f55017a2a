"""Publish an audited dataset to the Hugging Face Hub, and pull one back.

:func:`build_upload_folder` makes the exact folder that is uploaded: the parquet shards under
``data/`` (images embedded), ``manifest.json`` and a dataset card (``README.md``) whose YAML
header declares the config, license and tags, and whose body gives the provenance a reader
needs. :func:`push` uploads that folder; the token comes from the caller, the environment
(``HF_TOKEN``) or the saved login, and is never printed or written.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audited import type_label
from .prompts import get_prompts
from .store import SPLIT, AuditStore, load_audit

DEFAULT_LICENSE = "other"


@dataclass
class CardFacts:
    """Everything the card says, gathered from the run's manifest and its data."""

    identity: dict[str, Any]
    probes: int
    failures: int
    per_mode: dict[str, dict[str, int]]
    per_failure_type: dict[str, int]
    reviewed_share: float | None
    license: str
    auditor_checkpoint: str | None


def gather_facts(out_dir: Path, license: str, reviewed_share: float | None, auditor_checkpoint: str | None) -> CardFacts:
    manifest = json.loads((out_dir / "manifest.json").read_text())
    table = load_audit(out_dir).select_columns(["mode", "is_failure", "ensemble_agrees", "failure_type"]).to_pandas()
    per_mode = {
        mode: {"probes": int(len(group)), "ensemble_agrees": int(group["ensemble_agrees"].sum()), "failures": int(group["is_failure"].sum())}
        for mode, group in table.groupby("mode")
    }
    failures = table[table["is_failure"]]
    per_type = Counter(type_label(t if isinstance(t, str) else None) for t in failures["failure_type"])
    return CardFacts(
        identity=manifest["identity"],
        probes=int(len(table)),
        failures=int(len(failures)),
        per_mode=per_mode,
        per_failure_type=dict(sorted(per_type.items(), key=lambda kv: (-kv[1], kv[0]))),
        reviewed_share=reviewed_share,
        license=license,
        auditor_checkpoint=auditor_checkpoint,
    )


def card_text(facts: CardFacts, repo_id: str) -> str:
    from huggingface_hub import DatasetCard, DatasetCardData

    ident = facts.identity
    data = DatasetCardData(
        license=facts.license,
        task_categories=["visual-question-answering"],
        tags=["auditdm", "model-auditing", "failure-discovery", "synthetic"],
        pretty_name=f"AuditDM audit of {ident['target']}",
        size_categories=_size_category(facts.probes),
        configs=[{"config_name": "default", "data_files": [{"split": SPLIT, "path": f"data/{SPLIT}-*.parquet"}]}],
    )
    prompts = get_prompts(ident["prompt_variant"])
    mode_rows = "\n".join(
        f"| {mode} | {row['probes']} | {row['ensemble_agrees']} | {row['failures']} |" for mode, row in sorted(facts.per_mode.items())
    )
    type_rows = "\n".join(f"| {name} | {count} |" for name, count in facts.per_failure_type.items()) or "| (none) | 0 |"
    reviewed = f"{facts.reviewed_share:.1%} of the pairs" if facts.reviewed_share is not None else "none (no pair was reviewed by a person)"
    reference_kind = "reference model (model comparison)" if len(ident["references"]) == 1 else "reference ensemble (target excluded)"
    body = f"""
# AuditDM audit of `{ident['target']}`

Question-image pairs on which the target model disagrees with its {reference_kind}, found with
[AuditDM](https://arxiv.org/abs/2512.16921) ("Differences That Matter: Auditing Models for Capability
Gap Discovery and Rectification"). Each row holds the probe (image, question, how it was made), every
model's answer, the consensus, whether the ensemble agreed and whether it is a target failure.

Load it with `datasets.load_dataset("{repo_id}", split="{SPLIT}")`; evaluate models on it with
`auditdm write-tasks {repo_id}` (lmms-eval) or `auditdm-vlmeval --data {repo_id}` (VLMEvalKit).

## Provenance

| | |
|---|---|
| target | `{ident['target']}` |
| reference models | {', '.join(f'`{r}`' for r in ident['references'])} |
| auditor | `{ident['auditor']}` (checkpoint: `{facts.auditor_checkpoint or ident['auditor']}`) |
| prompt variant | `{ident['prompt_variant']}` |
| regeneration renderer | `{ident['regenerate_model']}` ({ident['render_steps']} steps, guidance {ident['regenerate_guidance']}) |
| editing renderer | `{ident['edit_model']}` ({ident['render_steps']} steps, guidance {ident['edit_guidance']}) |
| render size | {ident['render_size']} px |
| image pool | `{ident['images']}` |
| matching rule | `{ident['matcher']}` (VQA normalisation + exact match first){f" with `{ident['matcher_model']}`" if ident.get('matcher_model') else ''} |
| agreement rule | `{ident['agreement_rule']}` |
| reward | `{ident['reward']}` |
| human review | {reviewed} |
| license | `{facts.license}` |

### Auditor prompts

- question (p_q): {prompts.question}
- caption (p_c): {prompts.caption}
- edit (p_e): {prompts.edit}

## Counts

{facts.probes} probes, {facts.failures} discovered target failures.

| mode | probes | ensemble agrees | target failures |
|---|---|---|---|
{mode_rows}

| failure type | target failures |
|---|---|
{type_rows}

## Caveats

A failure means the target disagrees with a reference that agreed with itself; in the paper's
human check 81.3% of such pairs were genuine target failures, 11.5% ambiguous and 7.2% unanswerable.
"""
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def build_upload_folder(
    out_dir: str | Path,
    folder: str | Path,
    repo_id: str,
    license: str = DEFAULT_LICENSE,
    reviewed_share: float | None = None,
    auditor_checkpoint: str | None = None,
) -> Path:
    """Write the folder :func:`push` uploads: ``data/`` shards, ``manifest.json`` and ``README.md``."""
    out_dir, folder = Path(out_dir), Path(folder)
    shards = AuditStore(out_dir).shards()
    if not shards:
        raise FileNotFoundError(f"{out_dir} holds no audit shards (data/{SPLIT}-*.parquet): run `auditdm audit` first")
    if reviewed_share is not None and not 0.0 <= reviewed_share <= 1.0:
        raise ValueError(f"--reviewed-share must be a fraction between 0 and 1, got {reviewed_share}")
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "data").mkdir(parents=True)
    for index, shard in enumerate(shards):
        shutil.copyfile(shard, folder / "data" / f"{SPLIT}-{index:05d}-of-{len(shards):05d}.parquet")
    shutil.copyfile(out_dir / "manifest.json", folder / "manifest.json")
    facts = gather_facts(out_dir, license, reviewed_share, auditor_checkpoint)
    (folder / "README.md").write_text(card_text(facts, repo_id))
    return folder


def push(folder: str | Path, repo_id: str, private: bool = False, token: str | None = None) -> str:
    """Create the dataset repo if needed and upload ``folder``; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)  # None: HF_TOKEN or the saved login, resolved by huggingface_hub
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type="dataset",
        commit_message="Upload AuditDM audited dataset",
        delete_patterns=["data/*.parquet"],  # replace shards of an earlier upload, keep other files
    )
    return str(getattr(commit, "commit_url", commit))


def pull(source: str, out_dir: str | Path) -> Path:
    """A Hub dataset repo (or a local folder of one) into ``out_dir`` in the audit output layout."""
    out_dir = Path(out_dir)
    local = Path(source)
    if local.is_dir():
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(local, out_dir)
    else:
        from huggingface_hub import snapshot_download

        snapshot_download(source, repo_type="dataset", local_dir=str(out_dir))
    if not list((out_dir / "data").glob(f"{SPLIT}-*.parquet")):
        raise FileNotFoundError(f"{source} has no data/{SPLIT}-*.parquet shards: is it an AuditDM dataset?")
    return out_dir
