"""The payload of the ``lmms_eval.models`` entry point (lmms-eval >= 0.7 reads it on start)."""

from __future__ import annotations


def manifests():
    from lmms_eval.models.registry_v2 import ModelManifest

    return [
        ModelManifest(
            model_id="auditdm",
            simple_class_path="auditdm_eval.harness.lmms_eval_model.AuditDMModel",
            aliases=("auditdm_adapter",),
        )
    ]
