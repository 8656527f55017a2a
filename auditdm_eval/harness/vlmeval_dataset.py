"""An audited dataset as a VLMEvalKit dataset, with its own ``evaluate``.

Each probe the reference ensemble agreed on becomes one item; the answer is the consensus. The
evaluation scores predictions with the audit's own matcher (VQA normalisation + exact match) and
reports accuracy, the failure rate on the audited target's discovered failures, and accuracy per
failure type and per audit mode. The scores' ``_acc.json`` carries the audit's name and id (see
:mod:`.identity`), so the leaderboard puts them in the same column as the lmms-eval results.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from vlmeval.dataset.image_base import ImageBaseDataset
from vlmeval.smp import load

from model_adapters.families import SHORT_ANSWER_SUFFIX

from .. import audited
from ..store import answer_length, load_audited
from .identity import AuditIdentity, identify


def audited_frame(source: str) -> pd.DataFrame:
    """The answerable probes of an audited dataset in VLMEvalKit's TSV layout (base64 images)."""
    import datasets

    dataset = load_audited(source).cast_column("image", datasets.Image(decode=False))
    rows = []
    for row in dataset:
        if not audited.is_answerable(row):
            continue
        rows.append(
            {
                "index": len(rows),
                "image": base64.b64encode(row["image"]["bytes"]).decode(),
                "question": row["question"].strip() + SHORT_ANSWER_SUFFIX,
                "answer": row["consensus_answer"],
                "failure_type": audited.type_label(row["failure_type"]),
                "is_failure": bool(row["is_failure"]),
                "mode": row["mode"],
                "probe_id": row["probe_id"],
                "image_sha256": row["image_sha256"],
            }
        )
    if not rows:
        raise ValueError(f"{source} holds no probe the reference ensemble agreed on: nothing to evaluate")
    return pd.DataFrame(rows)


class AuditDMDataset(ImageBaseDataset):
    TYPE = "VQA"
    MODALITY = "IMAGE"
    SOURCES: ClassVar[dict[str, str]] = {}  # VLMEvalKit dataset name -> audit output dir or Hub id
    IDENTITIES: ClassVar[dict[str, AuditIdentity]] = {}

    @classmethod
    def register(cls, name: str, source: str, identity: AuditIdentity | None = None) -> str:
        cls.SOURCES[name] = source
        if identity is not None:
            cls.IDENTITIES[name] = identity
        return name

    @classmethod
    def answer_length(cls, name: str | None) -> int | None:
        """Ask as the audit asked: its answer length, when the source is a local audit output."""
        source = cls.SOURCES.get(name or "")
        return answer_length(source) if source else None

    @classmethod
    def supported_datasets(cls) -> list[str]:
        return list(cls.SOURCES)

    def load_data(self, dataset: str) -> pd.DataFrame:
        return audited_frame(self.SOURCES[dataset])

    def post_build(self, dataset: str) -> None:
        # VLMEvalKit writes images to <img_root>/<index>.png once and never rewrites them: key the
        # folder by content so two audits under one name never share stale images.
        digest = hashlib.sha256("".join(self.data["image_sha256"]).encode()).hexdigest()[:16]
        self.img_root = str(Path(self.img_root) / digest)

    def evaluate(self, eval_file: str, **judge_kwargs: Any) -> pd.DataFrame:
        data = load(eval_file)
        predictions = ["" if pd.isna(p) else str(p) for p in data["prediction"]]
        data["correct"] = [audited.is_correct(p, str(a)) for p, a in zip(predictions, data["answer"])]
        data["is_failure"] = data["is_failure"].astype(str).str.lower().isin({"true", "1"})

        def scores_of(split: str, group: pd.DataFrame) -> dict[str, Any]:
            correct, discovered = list(group["correct"]), list(group["is_failure"])
            return {"split": split, "n": len(group), "accuracy": audited.accuracy(correct),
                    "failure_rate": audited.failure_rate(correct, discovered)}

        rows = [scores_of("overall", data)]
        for column in ("failure_type", "mode"):
            rows += [scores_of(f"{column}={value}", group) for value, group in data.groupby(column)]
        scores = pd.DataFrame(rows)
        identity = self.IDENTITIES.get(self.dataset_name) or identify(self.SOURCES[self.dataset_name])
        stem = str(Path(eval_file).with_suffix(""))
        scores.to_csv(f"{stem}_acc.csv", index=False)
        summary = {"audit": identity.name, "audit_id": identity.audit_id, "splits": scores.to_dict(orient="records")}
        Path(f"{stem}_acc.json").write_text(json.dumps(summary, indent=2))
        return scores
