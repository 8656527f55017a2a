"""Does a GRPO-trained auditor find planted weaknesses that prompting misses? The figures of issue 8.

For each planted weakness of the world (red/green swapped, left/right mirrored, undercounting from
three up), with the code users run:

1. ``auditdm train-auditor --config recipes/configs/auditor_world.yaml --target world-target-<weakness>``
   (the warm-started world auditor, three noisy oracles with 10% independent errors, majority);
2. ``auditdm compare-auditors`` on a held-out pool (another seed) for the trained auditor, the warm
   start it began from, and the same model with the prompt-engineering baseline's prompt
   (``@baseline``), with the question mode's scene-aware and blind ceilings;
3. the trained auditor again against three oracles whose errors are correlated;
4. the trained auditor and the baseline again with their probes sampled (``--auditor-temperature``, by
   default 1 with top-p 0.95, as the auditor writes during training and as the paper's auditor writes
   several probes per image) instead of greedy: the policy's own variety, which greedy decoding of one
   probe per image hides. ``--sampling-seeds`` repeats it with other seeds: each seed's figures are kept,
   and ``trained_sampled`` pools their probes (success over all of them, its interval per scene, as a
   scene's probes of several seeds are not independent; distinct probes and precision averaged over the
   seeds, as distinct texts per probe written fall as a pool grows);
5. with ``--checkpoint-steps``, the trained auditor's checkpoints at those steps too (greedy, the
   independent references): how success grows with training, charted against the ceilings.

Writes ``benchmarks/results/auditor-training-world.json`` and prints a table: success rate (95% CI),
its multiple of the baseline's, its share of the scene-aware ceiling, the blind ceiling, distinct
probes per 100 written and in 100 drawn, precision and recall against the ground truth.

    python benchmarks/auditor_training.py --weaknesses redgreen mirror undercount --pool world:300:7
    python benchmarks/auditor_training.py --auditor world-auditor-large   # the larger warm start
    python benchmarks/auditor_training.py --auditor world-auditor-large \
        --json benchmarks/results/auditor-training-world-large-900-steps.json --train-args --max_steps 900
    python benchmarks/auditor_training.py --recipe my_auditor_recipe.yaml --json benchmarks/results/mine.json
    python benchmarks/auditor_training.py --weaknesses redgreen --checkpoint-steps 1500 2000 2500 3000 \
        --json benchmarks/results/auditor-training-world-shipped-3000-steps.json --train-args --max_steps 3000 --save_steps 250
    python benchmarks/auditor_training.py --weaknesses undercount --sampling-temperature 0.5 --sampling-seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml
from common import machine  # a sibling module: this folder is on sys.path when it runs

from auditdm_eval.cli import main as auditdm
from auditdm_eval.compare import clustered_wilson

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "configs" / "auditor_world.yaml"
INDEPENDENT = "world-oracle-noisy-a,world-oracle-noisy-b,world-oracle-noisy-c"
CORRELATED = "world-oracle-correlated-a,world-oracle-correlated-b,world-oracle-correlated-c"
SUMMARIES = ("trained", "warm_start", "baseline", "trained_correlated_references", "trained_sampled", "baseline_sampled")


def compare(auditors: list[str], target: str, references: str, pool: str, out: Path, *flags: str, tokens: int) -> dict:
    code = auditdm([
        "compare-auditors", *auditors, "--images", pool, "--target", target, "--ensemble", references,
        "--agreement", "majority", "--answer-max-new-tokens", "4", "--auditor-max-new-tokens", str(tokens), "--no-cache",
        "--out", str(out), *flags,
    ])
    if code:
        raise SystemExit(f"compare-auditors exited {code}")
    return json.loads((out / "compare.json").read_text())


def summary(auditor: dict, baseline: dict, ceilings: dict | None) -> dict:
    overall = auditor["overall"]
    rate = overall["success_rate"]
    base = baseline["overall"]["success_rate"]
    return {
        "success_rate": rate,
        "success_interval": overall["success_interval"],
        "times_baseline": rate / base if base else float("inf"),
        "share_of_scene_aware_ceiling": rate / ceilings["scene_aware"] if ceilings and ceilings["scene_aware"] else None,
        "distinct_per_100": overall["distinct_per_100"],
        "distinct_in_100": overall["distinct_in_100"],
        "answerable_share": overall["answerable_share"],
        "precision": overall["precision"],
        "recall": overall["recall"],
    }


def pooled(summaries: list[dict], reports: list[dict]) -> dict:
    """One summary of several sampled runs over the same pool: counts pooled (the interval per scene),
    per-run ratios averaged."""
    written = sum(report["overall"]["probes_written"] for report in reports)
    failures = sum(report["overall"]["failures"] for report in reports)
    merged = {key: _mean([s[key] for s in summaries]) for key in summaries[0] if key != "success_interval"}
    merged["success_rate"] = failures / written if written else float("nan")
    merged["success_interval"] = list(clustered_wilson(scene_outcomes(reports)))
    return merged


def scene_outcomes(reports: list[dict]) -> list[tuple[int, int]]:
    """(failures, probes) per scene over the runs' audits (each seed's probe of a scene in one cluster)."""
    from auditdm_eval.compare import scene_outcomes as outcomes
    from auditdm_eval.store import AuditStore, load_audit

    rows, unmade = [], 0
    for report in reports:
        made = []  # an auditor none of whose texts became a probe has no shards
        if AuditStore(report["audit_dir"]).shards():
            made = load_audit(report["audit_dir"]).select_columns(["source_id", "is_failure"]).to_list()
        rows += made
        unmade += report["overall"]["probes_written"] - len(made)
    return outcomes(rows, unmade)


def _mean(values: list) -> float | None:
    numbers = [value for value in values if value is not None]
    return sum(numbers) / len(numbers) if numbers else None


def sampled_runs(trained: Path, baseline_name: str, target: str, pool: str, out: Path, ceilings: dict | None,
                 temperature: float, seeds: list[int], tokens: int) -> dict:
    """The trained auditor and the baseline sampled once per seed; their pooled summaries and each seed's."""
    per_seed, trained_reports, baseline_reports = [], [], []
    # temperature 1 is --auditor_sampling's own: the same identity as sampled audits made before the flag existed
    sampling = ["--auditor_sampling"] if temperature == 1.0 else ["--auditor-temperature", str(temperature)]
    for seed in seeds:
        folder = out / (f"sampled-t{temperature:g}-seed{seed}" if (temperature, seed) != (1.0, 0) else "sampled")
        compared = compare(
            [str(trained), baseline_name], target, INDEPENDENT, pool, folder,
            *sampling, "--seed", str(seed), tokens=tokens,
        )
        reports = {report["label"]: report for report in compared["auditors"]}
        trained_reports.append(reports[str(trained)])
        baseline_reports.append(reports[baseline_name])
        per_seed.append({
            "seed": seed,
            "trained": summary(reports[str(trained)], reports[baseline_name], ceilings),
            "baseline": summary(reports[baseline_name], reports[baseline_name], ceilings),
        })
    baseline_summary = pooled([run["baseline"] for run in per_seed], baseline_reports)
    trained_summary = pooled([run["trained"] for run in per_seed], trained_reports)
    base = baseline_summary["success_rate"]
    trained_summary["times_baseline"] = trained_summary["success_rate"] / base if base else float("inf")
    return {"temperature": temperature, "trained_sampled": trained_summary, "baseline_sampled": baseline_summary, "sampled_seeds": per_seed}


def checkpoint_curve(trained: Path, steps: list[int], target: str, pool: str, out: Path, baseline: dict, ceilings: dict | None,
                     tokens: int) -> dict[str, dict]:
    """Step -> the summary of the trained auditor's checkpoint at that step, on the held-out pool."""
    found = {step: trained / f"checkpoint-{step}" for step in steps}
    missing = [str(path) for path in found.values() if not path.is_dir()]
    if missing:
        raise SystemExit(f"--checkpoint-steps: no checkpoint {', '.join(missing)}; pass steps the run saved (--save_steps)")
    compared = compare([str(path) for path in found.values()], target, INDEPENDENT, pool, out, tokens=tokens)
    reports = {report["label"]: report for report in compared["auditors"]}
    return {str(step): summary(reports[str(path)], baseline, ceilings) for step, path in found.items()}


def plot_curve(curve: dict[str, dict], ceilings: dict | None, baseline: float, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [int(step) for step in curve]
    rates = [100 * row["success_rate"] for row in curve.values()]
    low = [rate - 100 * row["success_interval"][0] for rate, row in zip(rates, curve.values())]
    high = [100 * row["success_interval"][1] - rate for rate, row in zip(rates, curve.values())]
    figure, axis = plt.subplots(figsize=(6.4, 4))
    axis.errorbar(steps, rates, yerr=[low, high], marker="o", capsize=3, label="trained auditor (greedy, 95% CI)")
    if ceilings:
        axis.axhline(100 * ceilings["scene_aware"], color="green", linestyle="--", label="scene-aware ceiling")
        axis.axhline(90 * ceilings["scene_aware"], color="green", linestyle=":", label="90% of it")
        axis.axhline(100 * ceilings["blind"], color="grey", linestyle="--", label="blind ceiling")
    axis.axhline(100 * baseline, color="red", linestyle="--", label="prompted baseline")
    axis.set(xlabel="GRPO step", ylabel="failure-search success (%)", title=title, ylim=(0, 100))
    axis.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def warm_start_record(auditor: str) -> dict | None:
    """The warm start's validation and what it was built with (weights differ by machine: see the README)."""
    import auditdm_eval  # noqa: F401  (registers the world's model names)
    from model_adapters import resolve

    record = Path(resolve(auditor)[0]) / "warm_start.json"
    return json.loads(record.read_text()) if record.exists() else None


def trained_length(recipe: dict, train_args: list[str]) -> int:
    """The recipe's max_completion_length, or the one --train-args sets in its place."""
    flag = "--max_completion_length"
    for i, arg in enumerate(train_args):
        if arg == flag and i + 1 < len(train_args):
            return int(train_args[i + 1])
        if arg.startswith(flag + "="):
            return int(arg.split("=", 1)[1])
    return int(recipe["max_completion_length"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weaknesses", nargs="+", default=["redgreen", "mirror", "undercount"])
    parser.add_argument("--pool", default="world:300:7", help="the held-out pool (the recipe trains on world:4000:1)")
    parser.add_argument("--auditor", help="the warm-started auditor to train (a model name; default: the recipe's)")
    parser.add_argument("--work", type=Path, help="default: outputs/auditor-training-benchmark/<the --json file's stem>")
    parser.add_argument("--json", type=Path, help="default: benchmarks/results/auditor-training-<auditor minus 'auditor'>.json")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="the train-auditor config (its max_completion_length, "
                        "or --train-args', also bounds the probes compare-auditors writes)")
    parser.add_argument("--checkpoint-steps", nargs="+", type=int, default=[],
                        help="also compare the trained auditor's checkpoints at these steps (the run must save them)")
    parser.add_argument("--sampling-temperature", type=float, default=1.0,
                        help="the temperature of the sampled comparisons (top-p 0.95)")
    parser.add_argument("--sampling-seeds", nargs="+", type=int, default=[0],
                        help="sample the comparisons once per seed; the figures pool them")
    parser.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="more train-auditor flags (after the others)")
    args = parser.parse_args()
    if not args.sampling_temperature > 0:
        parser.error(f"--sampling-temperature must be above 0 (got {args.sampling_temperature})")
    if not args.recipe.is_file():
        parser.error(f"--recipe {args.recipe}: no such file; pass a train-auditor config such as {RECIPE}")
    recipe = yaml.safe_load(args.recipe.read_text()) or {}
    args.auditor = args.auditor or recipe.get("auditor")
    if not args.auditor:
        parser.error(f"--recipe {args.recipe} names no auditor: add 'auditor: <warm start>' to it or pass --auditor")
    name = Path(args.auditor).name  # a registered name or a local checkpoint's folder
    args.json = args.json or Path(__file__).parent / "results" / f"auditor-training-{name.replace('-auditor', '')}.json"
    stem = args.json.stem  # the charts, and the work folder (another --json never reuses this one's trained auditors)
    args.work = args.work or Path("outputs/auditor-training-benchmark") / stem
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tokens = trained_length(recipe, args.train_args)  # the auditor writes as long texts as it was trained to
    results = {
        "machine": machine(), "auditor": args.auditor, "warm_start": warm_start_record(args.auditor), "pool": args.pool,
        "recipe": recipe, "train_args": args.train_args, "weaknesses": {},
    }
    for weakness in args.weaknesses:
        target = f"world-target-{weakness}"
        trained = args.work / weakness / "auditor"
        code = auditdm([  # a finished run is reused, an interrupted one resumes
            "train-auditor", "--config", str(args.recipe), "--target", target, "--auditor", args.auditor,
            "--output_dir", str(trained), "--disable_tqdm", "true", *args.train_args,
        ])
        if code:
            raise SystemExit(f"train-auditor exited {code}")
        log = json.loads((trained / "auditor_training.json").read_text())["log_history"]
        train_seconds = next(entry["train_runtime"] for entry in reversed(log) if "train_runtime" in entry)
        auditors = [str(trained), args.auditor, f"{args.auditor}@baseline"]
        independent = compare(auditors, target, INDEPENDENT, args.pool, args.work / weakness / "independent", tokens=tokens)
        correlated = compare([str(trained)], target, CORRELATED, args.pool, args.work / weakness / "correlated", tokens=tokens)
        reports = {report["label"]: report for report in independent["auditors"]}
        baseline = reports[f"{args.auditor}@baseline"]
        ceilings = independent["ceilings"]
        results["weaknesses"][weakness] = {
            "train_seconds": round(train_seconds, 1),
            "ceilings": ceilings,
            "trained": summary(reports[str(trained)], baseline, ceilings),
            "warm_start": summary(reports[args.auditor], baseline, ceilings),
            "baseline": summary(baseline, baseline, ceilings),
            "trained_correlated_references": summary(correlated["auditors"][0], baseline, correlated["ceilings"]),
            "correlated_ceilings": correlated["ceilings"],
            **sampled_runs(
                trained, f"{args.auditor}@baseline", target, args.pool, args.work / weakness, ceilings,
                args.sampling_temperature, args.sampling_seeds, tokens,
            ),
        }
        if args.checkpoint_steps:
            curve = checkpoint_curve(
                trained, args.checkpoint_steps, target, args.pool, args.work / weakness / "checkpoints", baseline, ceilings, tokens,
            )
            results["weaknesses"][weakness]["checkpoints"] = curve
            plot_curve(
                curve, ceilings, baseline["overall"]["success_rate"], f"{target} on {args.pool}",
                args.json.parent / f"{stem}-{weakness}-checkpoints.png",
            )
        shutil.copyfile(args.work / weakness / "independent" / "compare.png", args.json.parent / f"{stem}-{weakness}.png")
    args.json.write_text(json.dumps(results, indent=2, default=float))
    print(f"{'weakness':12s} {'auditor':24s} {'success':>8s} {'x base':>7s} {'ceiling%':>8s} {'blind':>6s} {'distinct':>8s} {'in 100':>6s} {'precision':>9s}")
    for weakness, row in results["weaknesses"].items():
        blind = row["ceilings"]["blind"] if row["ceilings"] else float("nan")
        named = [(name, row[name]) for name in SUMMARIES]
        named += [(f"checkpoint-{step}", s) for step, s in row.get("checkpoints", {}).items()]
        for name, s in named:
            share = s["share_of_scene_aware_ceiling"]
            print(
                f"{weakness:12s} {name:24s} {100 * s['success_rate']:7.1f}% {s['times_baseline']:7.1f} "
                f"{(100 * share if share is not None else float('nan')):7.1f}% {100 * blind:5.1f}% {s['distinct_per_100']:8.0f} {s['distinct_in_100']:6.1f} "
                f"{(s['precision'] if s['precision'] is not None else float('nan')):9.3f}"
            )
    print(f"written: {args.json}")


if __name__ == "__main__":
    main()
