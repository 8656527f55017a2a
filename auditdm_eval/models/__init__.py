"""lmms-eval's legacy plugin hook: ``LMMS_EVAL_PLUGINS=auditdm_eval`` imports this module and
registers :data:`AVAILABLE_MODELS` (``auditdm_eval.models.<name>.<class>``), then adds the
``auditdm_eval.tasks`` folder (the repository's ``tasks/``) to the task search path.

The ``lmms_eval.models`` entry point registers the same model without it; lmms-eval 0.7.3 adds
the plugin's tasks only after it has indexed tasks, so pass ``--include_path tasks`` there.
"""

AVAILABLE_MODELS = {"auditdm": "AuditDMModel"}
