"""``auditdm_eval.models.auditdm.AuditDMModel``: where ``LMMS_EVAL_PLUGINS=auditdm_eval`` looks for it."""

from ..harness.lmms_eval_model import AuditDMModel

__all__ = ["AuditDMModel"]
