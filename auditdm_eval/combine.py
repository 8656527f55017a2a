"""``auditdm combine``: the probes of several audits of one target as one dataset, each distinct probe once.

The paper audits with the auditor's checkpoints every 250 steps and pools what they find. Audits
combine when their verdicts mean the same thing: the same target, references, matcher, agreement
rule and reward; the auditors, prompt variants and image pools may differ. A probe is the same
probe when its image has the same pixels and its question the same normalised words; the first
audit listed keeps it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError
from .matching import normalize_answer
from .records import AuditRecord
from .store import MANIFEST, AuditStore, load_audit, summarize

SAME_VERDICTS = ("target", "references", "matcher", "matcher_model", "agreement_rule", "reward")


@dataclass
class Combined:
    out: Path
    probes: int
    duplicates: int
    per_source: dict[str, int]


def identity_of(audit: str | Path) -> dict:
    manifest = Path(audit) / MANIFEST
    if not manifest.is_file():
        raise ConfigError(f"{audit} is not an audit folder (no {MANIFEST}): pass folders written by `auditdm audit`")
    return json.loads(manifest.read_text())["identity"]


def probe_key(row: dict) -> tuple[str, str]:
    return row["image_sha256"], " ".join(normalize_answer(row["question"]).split())


def combine_audits(audits: Sequence[str | Path], out: str | Path, overwrite: bool = False, shard_size: int = 256) -> Combined:
    if not audits:
        raise ConfigError("combine needs at least one audit folder")
    identities = [identity_of(audit) for audit in audits]
    first = identities[0]
    for audit, identity in zip(audits[1:], identities[1:]):
        differing = [key for key in SAME_VERDICTS if identity.get(key) != first.get(key)]
        if differing:
            details = "; ".join(f"{key}: {first.get(key)!r} vs {identity.get(key)!r}" for key in differing)
            raise ConfigError(f"{audit} judged its probes differently from {audits[0]} ({details}): combine audits of one target and ensemble")
    seen: set[tuple[str, str]] = set()
    per_source: dict[str, int] = {}
    duplicates = 0
    with AuditStore(out) as store:
        store.open({"combined_from": identities, "sources": [str(audit) for audit in audits]}, overwrite=overwrite)
        for audit in audits:
            kept, batch = 0, []
            for row in load_audit(audit):
                key = probe_key(row)
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                batch.append(AuditRecord.from_row(row))
                kept += 1
                if len(batch) == shard_size:
                    store.write_shard(batch)
                    batch = []
            store.write_shard(batch)
            per_source[str(audit)] = kept
        summary = summarize(store.load()) if store.shards() else {"probes": 0, "failures": 0, "per_mode": {}}
        summary["combined_from"] = per_source
        store.write_summary(summary)
    return Combined(Path(out), len(seen), duplicates, per_source)
