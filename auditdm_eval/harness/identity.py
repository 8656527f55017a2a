"""The name and identity of an audited dataset, the same for every harness that runs it.

- ``name``: what the harnesses call the audit (``auditdm_<name>`` in lmms-eval,
  ``AuditDM_<name>`` in VLMEvalKit, ``AuditDM <name>`` on the leaderboard). It is read from what
  the audit wrote: a ``name`` in its manifest when there is one, else its target model.
- ``audit_id``: a fingerprint of the probes that are scored (the answerable ones). Result files of
  both harnesses carry it, so the leaderboard keys one audit to one column whatever it was called.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import audited

MANIFEST = "manifest.json"


def slug(text: str) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return cleaned or "unnamed"


@dataclass(frozen=True)
class AuditIdentity:
    name: str
    audit_id: str


def manifest_of(source: str | Path) -> dict[str, Any] | None:
    path = Path(source) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def audit_id(probe_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(probe_ids)).encode()).hexdigest()[:12]


def default_name(manifest: dict[str, Any] | None, targets: Iterable[str | None]) -> str:
    identity = (manifest or {}).get("identity", {})
    named = (manifest or {}).get("name") or identity.get("name")
    if named:
        return slug(named)
    target = identity.get("target") or next((t for t in targets if t), None)
    if not target:
        raise ValueError("the audit names no target model: pass a name (--name)")
    return slug(Path(str(target).rstrip("/")).name)


def identify(source: str | Path, dataset=None, name: str | None = None) -> AuditIdentity:
    """The identity of ``source`` (audit output dir, saved dataset or Hub id); ``dataset`` is its
    loaded rows when the caller already has them."""
    if dataset is None:
        from ..store import load_audited

        dataset = load_audited(str(source))
    rows = dataset.select_columns(["probe_id", "target_model", *audited.ANSWERABLE_COLUMNS])
    answerable = [row for row in rows if audited.is_answerable(row)]
    resolved = slug(name) if name else default_name(manifest_of(source), (row["target_model"] for row in rows))
    return AuditIdentity(resolved, audit_id(row["probe_id"] for row in answerable))
