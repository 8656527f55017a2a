"""Training the auditor with GRPO (trl), its reward terms, and the warm start of a tiny auditor."""
