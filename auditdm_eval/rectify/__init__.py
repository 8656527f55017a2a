"""Rectification: fine-tune the target on the audited pairs (answers = the ensemble's consensus)."""
