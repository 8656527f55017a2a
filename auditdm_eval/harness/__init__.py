"""Integration with the evaluation harnesses: lmms-eval (model plugin + auditdm_* tasks) and
VLMEvalKit (model + dataset classes and a launcher). Harness imports stay inside the modules
that need them, so the core package works without either harness installed."""
