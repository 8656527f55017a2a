"""``auditdm leaderboard``: tables and plots from lmms-eval and VLMEvalKit result files.

Scores are read from the harnesses' own files (lmms-eval ``*_results.json``; VLMEvalKit
``<model>/<model>_<dataset>_{acc,score}.{csv,json}``), named by the paper's benchmark names
through the suite mapping, put on a 0-100 scale (MME keeps its own scale, CIDEr is x100), and
laid out models x benchmarks with deltas against a base model.

- Audited datasets: one column per audit (per harness), keyed by the audit's id that both
  harnesses' result files carry (see :mod:`.harness.identity`), labelled ``AuditDM <name>``,
  whatever the task or results folder was called; beside it the audit's failure rate (the share
  of the audited target's discovered failures the model fails too; lower is better).
- The average leaves out MME (its scale differs, as in the paper's Figure 2), the failure rates,
  and any benchmark not every model has: it is over the same benchmarks for every row, and the
  others are marked.
- The plot and the HTML page label every bar with its value (a zero draws a labelled stub, a
  missing result says so).
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .harness.suite import PAPER16

NO_AVERAGE = {"MME"}  # incompatible score scale (Figure 2)
AVERAGE = "Avg (w/o MME)"
FAILURE_RATE = "failure rate"
AUDIT_PREFIX = "AuditDM "


@dataclass(frozen=True)
class Score:
    model: str
    benchmark: str  # label: a paper benchmark name or "AuditDM <audit name>"
    value: float
    harness: str
    source: str
    metric: str = "score"  # "score", or FAILURE_RATE for an audit's failure rate
    key: str = ""  # what makes two results the same benchmark (an audit's id); default: the label

    @property
    def identity(self) -> str:
        return self.key or self.benchmark


def _pct(value: float) -> float:
    return 100.0 * float(value)


# lmms-eval task -> how to read its score from the task's results dict (see the suite's metrics)
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
    "mmt_val": lambda r: _pct(r["accuracy,none"]),
    "refcoco_bbox_rec_val": lambda r: _pct(r["refcoco_IoU,none"]),
}
LMMS_TO_BENCHMARK = {b.lmms_eval: b.name for b in PAPER16 if b.lmms_eval}
VLMEVAL_TO_BENCHMARK = {b.vlmeval: b.name for b in PAPER16 if b.vlmeval}


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _audit_scores(model: str, name: str, audit_id: str | None, accuracy, failure_rate, harness: str, source: str) -> list[Score]:
    key = f"audit:{audit_id}" if audit_id else f"audit-name:{name}"
    label = f"{AUDIT_PREFIX}{name}"
    return [
        Score(model, label, _pct(_number(accuracy)), harness, source, "score", key),
        Score(model, label, _pct(_number(failure_rate)), harness, source, FAILURE_RATE, key),
    ]


def read_lmms_eval(root: Path) -> list[Score]:
    scores = []
    for path in sorted(root.rglob("*_results.json")):
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "results" not in data:
            continue  # e.g. the caption tasks' submissions/*_results.json
        model = data.get("model_name") or str(data.get("config", {}).get("model_args", "?"))
        groups = data.get("group_subtasks", {})
        configs = data.get("configs", {})
        in_groups = {task for tasks in groups.values() for task in tasks}
        for task, result in data.get("results", {}).items():
            if task.startswith("auditdm_") and "accuracy,none" in result:
                subtasks = groups.get(task, [])
                if task in in_groups or task.endswith("_types"):
                    continue  # per-failure-type parts belong in the report, not the leaderboard
                metadata = next((configs.get(t, {}).get("metadata") or {} for t in subtasks if configs.get(t)), {})
                if not metadata:
                    metadata = configs.get(task, {}).get("metadata") or {}
                name = metadata.get("audit") or task[len("auditdm_"):]
                scores += _audit_scores(model, name, metadata.get("audit_id"), result["accuracy,none"],
                                        result.get("failure_rate,none"), "lmms-eval", str(path))
            elif task in LMMS_EVAL_METRICS and task in LMMS_TO_BENCHMARK:
                scores.append(Score(model, LMMS_TO_BENCHMARK[task], LMMS_EVAL_METRICS[task](result), "lmms-eval", str(path)))
    return scores


def _vlmeval_value(dataset: str, path: Path) -> float | None:
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return float(data["CIDEr"]) if isinstance(data, dict) and "CIDEr" in data else None  # already x100
    frame = pd.read_csv(path)
    if dataset == "MME" and {"perception", "reasoning"} <= set(frame.columns):
        return float(frame["perception"].iloc[0]) + float(frame["reasoning"].iloc[0])
    if dataset == "POPE" and "acc" in frame.columns:
        return float(frame["acc"].iloc[0])  # already %
    if dataset == "RefCOCO" and {"Split", "Average IoU"} <= set(frame.columns):
        return _pct(frame.set_index("Split").loc["Average", "Average IoU"])  # mean IoU, as lmms-eval's refcoco_IoU
    if "Overall" in frame.columns:
        value = float(frame["Overall"].iloc[0])
        return value if value > 1.0 else _pct(value)  # MCQ files hold fractions, VQA files percentages
    return None


def _vlmeval_audit(model: str, dataset: str, path: Path) -> list[Score]:
    frame = pd.read_csv(path).set_index("split")
    summary_file = path.with_suffix(".json")
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    summary = summary if isinstance(summary, dict) else {}
    name = summary.get("audit") or dataset[len("AuditDM_"):]
    overall = frame.loc["overall"]
    return _audit_scores(model, name, summary.get("audit_id"), overall["accuracy"], overall.get("failure_rate"), "vlmeval", str(path))


def read_vlmeval(root: Path) -> list[Score]:
    scores = []
    for path in sorted(list(root.rglob("*_acc.csv")) + list(root.rglob("*_score.csv")) + list(root.rglob("*_score.json"))):
        model = path.parent.name
        stem = path.stem
        if not stem.startswith(model + "_"):
            continue
        dataset = stem[len(model) + 1 :].rsplit("_", 1)[0]
        if dataset.startswith("AuditDM_"):
            if path.name.endswith("_acc.csv"):
                scores += _vlmeval_audit(model, dataset, path)
            continue
        if dataset not in VLMEVAL_TO_BENCHMARK:
            continue
        value = _vlmeval_value(dataset, path)
        if value is not None:
            scores.append(Score(model, VLMEVAL_TO_BENCHMARK[dataset], value, "vlmeval", str(path)))
    return scores


def collect(roots: Iterable[str | Path]) -> list[Score]:
    scores = []
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(
                f"no results directory {root}: pass the folder a harness wrote (lmms-eval --output_path, VLMEvalKit "
                f"--work-dir); if the harness ran, read its log: lmms-eval exits 0 even when its evaluation failed"
            )
        scores += read_lmms_eval(root) + read_vlmeval(root)
    return scores


def _labels(frame: pd.DataFrame) -> list[str]:
    """One column label per (benchmark identity, harness, metric)."""
    # an audit's label: its name; two different audits of one name get their ids added
    names = frame.groupby("identity")["benchmark"].agg(lambda labels: sorted(labels)[0])
    clashing = names[names.duplicated(keep=False)]
    label_of = {identity: (f"{label} ({identity.split(':', 1)[1]})" if identity in clashing.index else label)
                for identity, label in names.items()}
    harnesses = frame.groupby("identity")["harness"].nunique()
    labels = []
    for identity, harness, metric in zip(frame["identity"], frame["harness"], frame["metric"]):
        label = label_of[identity]
        if harnesses[identity] > 1:  # scored by both harnesses: their numbers are not interchangeable
            label = f"{label} [{harness}]"
        labels.append(f"{label} {FAILURE_RATE}" if metric == FAILURE_RATE else label)
    return labels


def build_table(scores: list[Score], base: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(models x benchmarks with the average, deltas against ``base`` or None).

    ``table.attrs`` says which columns the average is over (``averaged``), which were left out
    because not every model has them (``not_averaged``), and which are failure rates."""
    if not scores:
        raise ValueError("no scores found: pass lmms-eval --output_path or VLMEvalKit --work-dir directories")
    frame = pd.DataFrame([{**s.__dict__, "identity": s.identity} for s in scores])
    frame["column"] = _labels(frame)
    table = frame.pivot_table(index="model", columns="column", values="value", aggfunc="last", dropna=False)
    failure_rates = sorted(set(frame.loc[frame["metric"] == FAILURE_RATE, "column"]))
    paper = [b.name for b in PAPER16]
    rank = {name: i for i, name in enumerate(paper)}

    def order(column: str) -> tuple:  # paper order, then audits; each failure rate beside its score
        scored = column.removesuffix(f" {FAILURE_RATE}") if column in failure_rates else column
        return (rank.get(scored.split(" [")[0], len(paper)), scored, column in failure_rates)

    table = table[sorted(table.columns, key=order)]
    candidates = [c for c in table.columns if c not in NO_AVERAGE and c not in failure_rates]
    averaged = [c for c in candidates if table[c].notna().all()]
    table[AVERAGE] = table[averaged].mean(axis=1) if averaged else math.nan
    table.attrs.update(averaged=averaged, not_averaged=[c for c in candidates if c not in averaged], failure_rates=failure_rates)
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


def _header(table: pd.DataFrame, column: str) -> str:
    return f"{column} *" if column in table.attrs.get("not_averaged", []) else column


def average_note(table: pd.DataFrame) -> str:
    averaged, left_out = table.attrs.get("averaged", []), table.attrs.get("not_averaged", [])
    note = f"{AVERAGE}: the mean over {', '.join(averaged) or 'no benchmark'}, the benchmarks every model has."
    if left_out:
        note += f" * not in the average: {', '.join(left_out)} (not every model has a result)."
    if any(c in NO_AVERAGE for c in table.columns):
        note += " MME is left out of the average: its scale differs."
    if table.attrs.get("failure_rates"):
        note += (f" A {FAILURE_RATE} is the share of the audited target's discovered failures the model fails too"
                 " (lower is better); it is not in the average.")
    return note


def to_markdown(table: pd.DataFrame, deltas: pd.DataFrame | None) -> str:
    header = "| model | " + " | ".join(_header(table, c) for c in table.columns) + " |"
    lines = [header, "|---|" + "---|" * len(table.columns)]
    for model, row in table.iterrows():
        cells = [_cell(row[c], None if deltas is None else deltas.loc[model, c]) for c in table.columns]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + average_note(table) + "\n"


def _bar_label(value: float) -> str:
    return "no result" if pd.isna(value) else f"{value:.1f}"


def plot_averages(table: pd.DataFrame, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benchmarks = [c for c in table.columns if c != AVERAGE and c not in NO_AVERAGE]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), gridspec_kw={"width_ratios": [3, 1]})
    width = 0.8 / max(1, len(table))
    top = max(1.0, float(table[benchmarks].max().max()) if benchmarks else 1.0)
    for i, (model, row) in enumerate(table.iterrows()):
        xs = [j + i * width for j in range(len(benchmarks))]
        values = [0.0 if pd.isna(row[b]) else row[b] for b in benchmarks]
        bars = axes[0].bar(xs, values, width, label=model)
        axes[0].bar_label(bars, labels=[_bar_label(row[b]) for b in benchmarks], fontsize=7, rotation=90, padding=2)
        for x, b in zip(xs, benchmarks):  # a zero is a result: draw a stub so it does not read as missing
            if not pd.isna(row[b]) and row[b] == 0:
                axes[0].plot([x - width / 2, x + width / 2], [0, 0], color=bars.patches[0].get_facecolor(), linewidth=3)
    axes[0].set_xticks([j + 0.4 - width / 2 for j in range(len(benchmarks))], benchmarks, rotation=30, ha="right", fontsize=8)
    axes[0].set_ylim(0, top * 1.25)
    axes[0].set_ylabel("score; failure rate in %")
    axes[0].legend(fontsize=8)
    bars = axes[1].barh(list(table.index), table[AVERAGE].fillna(0.0), color="#2e86c1")
    axes[1].bar_label(bars, labels=[_bar_label(v) for v in table[AVERAGE]], fontsize=8, padding=2)
    axes[1].set_xlim(0, max(1.0, float(table[AVERAGE].max()) if table[AVERAGE].notna().any() else 1.0) * 1.3)
    axes[1].set_xlabel("average (see the note)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def chart_html(table: pd.DataFrame) -> str:
    """The plot's bars as HTML: every bar carries its value as text (a zero keeps a visible stub)."""
    columns = [c for c in table.columns if c not in NO_AVERAGE]
    top = max(1.0, float(table[[c for c in columns if c != AVERAGE]].max().max()) if len(columns) > 1 else 1.0)
    groups = []
    for column in columns:
        bars = []
        for model, value in table[column].items():
            state = "missing" if pd.isna(value) else "zero" if value == 0 else "value"
            width = 0.0 if pd.isna(value) else max(0.0, min(100.0, 100.0 * float(value) / top))
            bars.append(
                f'<div class="bar {state}" data-model="{html.escape(str(model))}">'
                f'<span class="model">{html.escape(str(model))}</span>'
                f'<span class="track"><span class="fill" style="width:{width:.1f}%"></span></span>'
                f'<span class="value">{html.escape(_bar_label(value))}</span></div>'
            )
        groups.append(f'<figure class="benchmark" data-benchmark="{html.escape(column)}">'
                      f"<figcaption>{html.escape(_header(table, column))}</figcaption>{''.join(bars)}</figure>")
    return f'<section id="chart">{"".join(groups)}</section>'


FAILURE_CLASS = ' class="failure-rate"'


def to_html(table: pd.DataFrame, deltas: pd.DataFrame | None, plot: Path, title: str) -> str:
    rows = []
    failure_rates = set(table.attrs.get("failure_rates", []))
    for model, row in table.iterrows():
        cells = "".join(
            f'<td data-benchmark="{html.escape(c)}"{FAILURE_CLASS if c in failure_rates else ""}>'
            f"{html.escape(_cell(row[c], None if deltas is None else deltas.loc[model, c]))}</td>"
            for c in table.columns
        )
        rows.append(f"<tr><th scope=\"row\">{html.escape(str(model))}</th>{cells}</tr>")
    head = "".join(f"<th data-benchmark=\"{html.escape(c)}\">{html.escape(_header(table, c))}</th>" for c in table.columns)
    image = base64.b64encode(plot.read_bytes()).decode()
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem}}table{{border-collapse:collapse}}
th,td{{border:1px solid #ccc;padding:.3rem .6rem;text-align:right}}th[scope=row]{{text-align:left}}
td.failure-rate{{color:#a33}}#chart{{display:flex;flex-wrap:wrap;gap:1.5rem;margin:1.5rem 0}}
figure.benchmark{{margin:0;min-width:18rem}}figcaption{{font-weight:600;margin-bottom:.3rem}}
.bar{{display:grid;grid-template-columns:9rem 10rem 4.5rem;align-items:center;gap:.4rem;font-size:.85rem}}
.track{{background:#eee;height:.9rem;position:relative}}.fill{{display:block;height:100%;background:#2e86c1}}
.bar.zero .fill{{width:3px!important;background:#c0392b}}.bar.missing .value{{color:#888;font-style:italic}}
.value{{text-align:right;font-variant-numeric:tabular-nums}}</style></head>
<body><h1>{html.escape(title)}</h1>
<table id="leaderboard"><thead><tr><th>model</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
<p id="note">Deltas in brackets are against the base model. {html.escape(average_note(table))}</p>
{chart_html(table)}
<img alt="scores per benchmark and average" src="data:image/png;base64,{image}">
</body></html>
"""


@dataclass
class Leaderboard:
    table: pd.DataFrame
    deltas: pd.DataFrame | None
    files: list[Path]


def make_leaderboard(roots: Iterable[str | Path], out: str | Path, base: str | None = None, title: str = "AuditDM leaderboard") -> Leaderboard:
    return write_leaderboard(collect(roots), out, base, title)


def write_leaderboard(scores: list[Score], out: str | Path, base: str | None = None, title: str = "AuditDM leaderboard") -> Leaderboard:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, deltas = build_table(scores, base)
    (out / "leaderboard.md").write_text(f"# {title}\n\n" + to_markdown(table, deltas))
    table.to_csv(out / "leaderboard.csv", float_format="%.2f")
    plot = plot_averages(table, out / "leaderboard.png")
    (out / "leaderboard.html").write_text(to_html(table, deltas, plot, title))
    return Leaderboard(table, deltas, [out / "leaderboard.md", out / "leaderboard.csv", plot, out / "leaderboard.html"])
