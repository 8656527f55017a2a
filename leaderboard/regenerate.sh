#!/usr/bin/env bash
# Regenerate the project's own tasks and leaderboard: audits (the embedded default, the planted-weakness
# world; and the tiny preset) -> tasks/ -> both harnesses on the tiny preset's audit -> tables. Real
# harness runs on tiny random models; offline; a few minutes on 2 cores. Settings: config.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
cfg() { "$BIN/python" -c "import yaml,sys; v=yaml.safe_load(open('leaderboard/config.yaml'))['$1']; print(' '.join(v) if isinstance(v, list) else v)"; }
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
work=$(mktemp -d); export LMUData="$work/LMUData"; mkdir -p "$LMUData"
rm -rf leaderboard/runs leaderboard/output
"$BIN/auditdm" audit --out "$work/world" --no-progress
"$BIN/auditdm" write-tasks "$work/world" --tasks-dir tasks   # named after the audit; rewrites its folder
"$BIN/auditdm" audit --preset tiny --out "$work/audit" --no-progress
"$BIN/auditdm" write-tasks "$work/audit" --tasks-dir tasks
name=$("$BIN/python" -c "from auditdm_eval.harness.identity import identify; print(identify('$work/audit').name)")
for model in $(cfg models); do
  "$BIN/lmms-eval" --model auditdm --model_args "pretrained=$model" --tasks "auditdm_$name" --include_path tasks \
    --output_path leaderboard/runs/lmms-eval
  "$BIN/auditdm-vlmeval" --model "$model" --data "tasks/$name/" --work-dir leaderboard/runs/vlmeval
done
rm -rf leaderboard/runs/vlmeval/logs leaderboard/runs/vlmeval/*/T2*
"$BIN/auditdm" leaderboard $(cfg results) --out "$(cfg output)" --base "$(cfg base)" --title "$(cfg title)"
