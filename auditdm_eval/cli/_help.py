"""One line per command, without importing the command modules (``auditdm --help`` stays fast)."""

HELP = {
    "audit": "discover target failures: auditor -> renderer -> answerers -> judge",
    "models": "list registered model names",
    "train-auditor": "train the auditor with GRPO, the audit's verdict as the reward",
    "compare-auditors": "failure-search success of auditors (trained, baseline) on a held-out pool",
    "combine": "several audits of one target (an auditor's checkpoints) as one de-duplicated dataset",
    "write-tasks": "write lmms-eval auditdm_* task YAMLs for an audited dataset",
    "tasks-dir": "print the default lmms-eval --include_path for written tasks",
    "eval": "run a benchmark suite (paper16) through lmms-eval or VLMEvalKit with our adapters",
    "report": "failure types, per-type failure rates, plots and review statistics",
    "review": "label audited pairs by hand in a local web page (Table 3)",
    "leaderboard": "tables and plots from lmms-eval / VLMEvalKit result files",
    "push": "publish an audited dataset to the Hugging Face Hub with a dataset card",
    "pull": "download an audited dataset from the Hub (or copy a local one)",
}
