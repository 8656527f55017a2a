"""``auditdm leaderboard``: tables and plots from lmms-eval and VLMEvalKit result files.

Scores are read from the harnesses' own files (lmms-eval ``*_results.json``; VLMEvalKit
``<model>/<model>_<dataset>_{acc,score}.{csv,json}``), named by the paper's benchmark names
through the suite mapping, put on a 0-100 scale (MME keeps its own scale, CIDEr is x100), and
laid out models x benchmarks with deltas against a base model and the average over benchmarks
without MME (as in the paper's Figure 2 and supplement Table 2).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .harness.suite import PAPER16

NO_AVERAGE = {"MME"}  # incompatible score scale (Figure 2)


@dataclass(frozen=True)
class Score:
    model: str
    benchmark: str
    value: float
    harness: str
    source: str


def _pct(value: float) -> float:
    return 100.0 * float(value)


# lmms-eval task -> how to read its score from the task's results dict
LMMS_EVAL_METRICS: dict[str, Callable[[dict], float]] = {
    "pope": lambda r: _pct(r["pope_accuracy,none"]),
    "seedbench": lambda r: _pct(r["seed_image,none"]),
    "ok_vqa_val2014": lambda r: _pct(r["exact_match,none"]),
    "vqav2_val": lambda r: _pct(r["exact_match,none"]),
    "gqa": lambda r: _pct(r["exact_match,none"]),
    "ai2d": lambda r: _pct(r["exact_match,none"]),
    "docvqa_val": lambda r: _pct(r["anls,none"]),
    "chartqa": lambda r: _pct(r["relaxed_overall,none"]),
    "coco2017_cap_val": lambda r: _pct(r["coco_CIDEr,none"]),
    "mme": lambda r: float(r["mme_perception_score,none"]) + float(r["mme_cognition_score,none"]),
    "mmmu_val": lambda r: _pct(r["mmmu_acc,none"]),
    "mmstar": lambda r: _pct(r["average,none"]),
    "realworldqa": lambda r: _pct(r["exact_match,none"]),
    "mmt_val": lambda r: _pct(r["submission,none"]) if "submission,none" in r else _pct(r["accuracy,none"]),
    "refcoco_bbox_rec_val": lambda r: _pct(r["refcoco_IoU,none"]),
}
LMMS_TO_BENCHMARK = {b.lmms_eval: b.name for b in PAPER16 if b.lmms_eval}
VLMEVAL_TO_BENCHMARK = {b.vlmeval: b.name for b in PAPER16 if b.vlmeval}


def read_lmms_eval(root: Path) -> list[Score]:
    scores = []
    for path in sorted(root.rglob("*_results.json")):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "results" not in data:
            continue  # e.g. the caption tasks' submissions/*_results.json
        model = data.get("model_name") or str(data.get("config", {}).get("model_args", "?"))
        per_type = {t for group, tasks in data.get("group_subtasks", {}).items() if group.endswith("_types") for t in tasks}
        for task, result in data.get("results", {}).items():
            if task in per_type:
                continue  # per-failure-type breakdowns belong in the report, not the leaderboard
            if task.startswith("auditdm_") and "accuracy,none" in result:
                scores.append(Score(model, f"AuditDM {task[len('auditdm_'):]}", _pct(result["accuracy,none"]), "lmms-eval", str(path)))
            elif task in LMMS_EVAL_METRICS and task in LMMS_TO_BENCHMARK:
                scores.append(Score(model, LMMS_TO_BENCHMARK[task], LMMS_EVAL_METRICS[task](result), "lmms-eval", str(path)))
    return scores


def _vlmeval_value(dataset: str, path: Path) -> float | None:
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return float(data["CIDEr"]) if "CIDEr" in data else None  # already x100
    frame = pd.read_csv(path)
    if "split" in frame.columns and "accuracy" in frame.columns:  # our AuditDM datasets
        return _pct(frame.set_index("split").loc["overall", "accuracy"])
    if dataset == "MME" and {"perception", "reasoning"} <= set(frame.columns):
        return float(frame["perception"].iloc[0]) + float(frame["reasoning"].iloc[0])
    if dataset == "POPE" and "acc" in frame.columns:
        return float(frame["acc"].iloc[0])  # already %
    if "Overall" in frame.columns:
        value = float(frame["Overall"].iloc[0])
        return value if value > 1.0 else _pct(value)  # MCQ files hold fractions, VQA files percentages
    return None


def read_vlmeval(root: Path) -> list[Score]:
    scores = []
    for path in sorted(list(root.rglob("*_acc.csv")) + list(root.rglob("*_score.csv")) + list(root.rglob("*_score.json"))):
        model = path.parent.name
        stem = path.stem
        if not stem.startswith(model + "_"):
            continue
        dataset = stem[len(model) + 1 :].rsplit("_", 1)[0]
        if dataset.startswith("AuditDM_"):
            benchmark = f"AuditDM {dataset[len('AuditDM_'):]}"
        elif dataset in VLMEVAL_TO_BENCHMARK:
            benchmark = VLMEVAL_TO_BENCHMARK[dataset]
        else:
            continue
        value = _vlmeval_value(dataset, path)
        if value is not None:
            scores.append(Score(model, benchmark, value, "vlmeval", str(path)))
    return scores


def collect(roots: Iterable[str | Path]) -> list[Score]:
    scores = []
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"no results directory {root}")
        scores += read_lmms_eval(root) + read_vlmeval(root)
    return scores


def build_table(scores: list[Score], base: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(models x benchmarks with an average without MME, deltas against ``base`` or None)."""
    if not scores:
        raise ValueError("no scores found: pass lmms-eval --output_path or VLMEvalKit --work-dir directories")
    frame = pd.DataFrame([s.__dict__ for s in scores])
    # a benchmark scored by both harnesses gets a column per harness: their numbers are not interchangeable
    both = frame.groupby("benchmark")["harness"].nunique()
    frame["benchmark"] = [b if both[b] == 1 else f"{b} [{h}]" for b, h in zip(frame["benchmark"], frame["harness"])]
    table = frame.pivot_table(index="model", columns="benchmark", values="value", aggfunc="last")
    order = [b.name for b in PAPER16 if b.name in table.columns] + sorted(c for c in table.columns if c not in {b.name for b in PAPER16})
    table = table[order]
    averaged = [c for c in table.columns if c not in NO_AVERAGE]
    table["Avg (w/o MME)"] = table[averaged].mean(axis=1)
    deltas = None
    if base is not None:
        if base not in table.index:
            raise ValueError(f"base model {base!r} has no results; models found: {', '.join(table.index)}")
        deltas = table.subtract(table.loc[base], axis=1)
    return table, deltas


def _cell(value: float, delta: float | None) -> str:
    if pd.isna(value):
        return "–"
    return f"{value:.1f}" if delta is None or pd.isna(delta) else f"{value:.1f} ({delta:+.1f})"


def to_markdown(table: pd.DataFrame, deltas: pd.DataFrame | None) -> str:
    header = "| model | " + " | ".join(table.columns) + " |"
    lines = [header, "|---|" + "---|" * len(table.columns)]
    for model, row in table.iterrows():
        cells = [_cell(row[c], None if deltas is None else deltas.loc[model, c]) for c in table.columns]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_averages(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = [c for c in table.columns if c != "Avg (w/o MME)" and c not in NO_AVERAGE]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(1, len(table))
    for i, (model, row) in enumerate(table.iterrows()):
        axes[0].bar([j + i * width for j in range(len(benchmarks))], row[benchmarks], width, label=model)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(benchmarks))], benchmarks, rotation=45, ha="right")
    axes[0].set_ylabel("score")
    axes[0].legend(fontsize=8)
    axes[1].barh(list(table.index), table["Avg (w/o MME)"], color="#2e86c1")
    axes[1].set_xlabel("average without MME")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def to_html(table: pd.DataFrame, deltas: pd.DataFrame | None, plot: Path, title: str) -> str:
    rows = []
    for model, row in table.iterrows():
        cells = "".join(
            f"<td data-benchmark=\"{html.escape(c)}\">{html.escape(_cell(row[c], None if deltas is None else deltas.loc[model, c]))}</td>"
            for c in table.columns
        )
        rows.append(f"<tr><th scope=\"row\">{html.escape(str(model))}</th>{cells}</tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    image = base64.b64encode(plot.read_bytes()).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}}th[scope=row]{{text-align:left}}</style></head>
<body><h1>{html.escape(title)}</h1>
<table id="leaderboard"><thead><tr><th>model</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
<p>Deltas in brackets are against the base model; the average leaves out MME (its scale differs).</p>
<img alt="scores per benchmark and average" src="data:image/png;base64,{image}">
</body></html>
"""


@dataclass
class Leaderboard:
    table: pd.DataFrame
    deltas: pd.DataFrame | None
    files: list[Path]


def make_leaderboard(roots: Iterable[str | Path], out: str | Path, base: str | None = None, title: str = "AuditDM leaderboard") -> Leaderboard:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, deltas = build_table(collect(roots), base)
    (out / "leaderboard.md").write_text(f"# {title}\n\n" + to_markdown(table, deltas))
    table.to_csv(out / "leaderboard.csv", float_format="%.2f")
    plot = plot_averages(table, out / "leaderboard.png")
    (out / "leaderboard.html").write_text(to_html(table, deltas, plot, title))
    return Leaderboard(table, deltas, [out / "leaderboard.md", out / "leaderboard.csv", plot, out / "leaderboard.html"])
