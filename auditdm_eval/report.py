"""``auditdm report``: failure types, per-type failure rates, plots, and review statistics.

Per-type failure rate = discovered failures of that type / probes of that type the references
agreed on. Comparing two targets (Figure 4 of the paper) normalises each type's two rates to sum
to 100 and orders types from the first target's most pronounced weaknesses to the second's.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import pandas as pd

from .audited import ANSWERABLE_COLUMNS, is_answerable, known_failure_type, type_label
from .failure_types import EmbeddingTypeClassifier, classify_all
from .records import FEATURES
from .store import AuditStore, load_audit

REVIEW_LABELS = ("target failure", "ambiguous", "unanswerable")


def probe_types(dataset: datasets.Dataset, fallback: EmbeddingTypeClassifier | None = None) -> list[str]:
    consensus = [[a] if a else [] for a in dataset["consensus_answer"]]
    questions = dataset["question"]
    known = [known_failure_type(extra) for extra in dataset["extra"]]
    unknown = [i for i, t in enumerate(known) if t is None]
    guessed = classify_all([questions[i] for i in unknown], [consensus[i] for i in unknown], fallback) if unknown else []
    for i, t in zip(unknown, guessed):
        known[i] = t
    return known


def write_types(out_dir: str | Path, fallback: EmbeddingTypeClassifier | None = None) -> int:
    """Fill the ``failure_type`` column of every shard (atomically, shard by shard); returns rows typed."""
    typed = 0
    for shard in AuditStore(out_dir).shards():
        table = datasets.Dataset.from_parquet(str(shard), features=FEATURES)
        types = probe_types(table, fallback)
        table = table.remove_columns("failure_type").add_column("failure_type", types).cast(FEATURES)
        tmp = shard.with_name(f".{shard.name}.tmp")
        table.to_parquet(str(tmp))
        tmp.replace(shard)
        typed += len(types)
    return typed


def failure_rates(dataset: datasets.Dataset, types: list[str] | None = None) -> pd.DataFrame:
    frame = dataset.select_columns([*ANSWERABLE_COLUMNS, "is_failure", "failure_type", "question"]).to_pandas()
    frame["type"] = types if types is not None else [type_label(t) for t in frame["failure_type"]]
    frame = frame[[is_answerable(row) for _, row in frame.iterrows()]]
    grouped = frame.groupby("type").agg(probes=("is_failure", "size"), failures=("is_failure", "sum"))
    grouped["failure_rate"] = grouped["failures"] / grouped["probes"]
    return grouped.sort_values(["failure_rate", "failures"], ascending=False)


def confusions(dataset: datasets.Dataset, top: int = 10) -> pd.DataFrame:
    """The most frequent (consensus answer -> target answer) pairs among the failures: what the target
    says instead of what it should (a swapped colour shows as ``red -> green``)."""
    frame = dataset.select_columns(["is_failure", "consensus_answer", "target_answer"]).to_pandas()
    frame = frame[frame["is_failure"]]
    counts = Counter(zip(frame["consensus_answer"].str.strip().str.lower(), frame["target_answer"].str.strip().str.lower()))
    rows = [{"expected": e, "target said": t, "failures": n} for (e, t), n in counts.most_common(top)]
    return pd.DataFrame(rows, columns=["expected", "target said", "failures"])


def normalized_comparison(a: pd.DataFrame, b: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    """Per type, the two targets' failure rates scaled to sum to 100 (types either target failed)."""
    joined = pd.concat([a["failure_rate"].rename("failure_rate_a"), b["failure_rate"].rename("failure_rate_b")], axis=1).fillna(0.0)
    total = joined["failure_rate_a"] + joined["failure_rate_b"]
    joined = joined[total > 0]
    out = pd.DataFrame(
        {label_a: 100 * joined["failure_rate_a"] / total[total > 0], label_b: 100 * joined["failure_rate_b"] / total[total > 0]}
    )
    return out.sort_values(label_a, ascending=False)


def plot_rates(rates: pd.DataFrame, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(rates) + 2), 4))
    ax.bar(rates.index, 100 * rates["failure_rate"], color="#c0392b")
    ax.set_ylabel("failure rate (%)")
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=60)
    plt.setp(ax.get_xticklabels(), ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_comparison(table: pd.DataFrame, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(table) + 2), 4))
    positions = range(len(table))
    width = 0.4
    for offset, (label, color) in zip((-width / 2, width / 2), zip(table.columns, ("#2e86c1", "#e67e22"))):
        ax.bar([p + offset for p in positions], table[label], width, label=label, color=color)
    ax.set_xticks(list(positions), table.index, rotation=60, ha="right")
    ax.set_ylabel("normalised failure rate (row sums to 100)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def read_labels(path: Path) -> dict[str, str]:
    """probe_id -> label; the last label given to a probe wins."""
    labels: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                entry = json.loads(line)
                labels[entry["probe_id"]] = entry["label"]
    return labels


def review_table(labels: dict[str, str]) -> pd.DataFrame:
    """The paper's Table 3 from human labels: share of target failures, ambiguous, unanswerable."""
    counts = Counter(labels.values())
    total = sum(counts[label] for label in REVIEW_LABELS)
    rows = [{"type": label, "count": counts[label], "percentage": 100 * counts[label] / total if total else 0.0} for label in REVIEW_LABELS]
    return pd.DataFrame(rows).set_index("type")


@dataclass
class Report:
    markdown: Path  # and failure_rates.json beside it
    plots: list[Path]
    rates: pd.DataFrame
    confusions: pd.DataFrame
    comparison: pd.DataFrame | None
    review: pd.DataFrame | None


def make_report(dataset_dir: str | Path, out: str | Path, compare: str | Path | None = None, fallback: bool = False) -> Report:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    classifier = EmbeddingTypeClassifier() if fallback else None
    audit = load_audit(dataset_dir)
    target = json.loads((Path(dataset_dir) / "manifest.json").read_text())["identity"]["target"]
    rates = failure_rates(audit, probe_types(audit, classifier))
    plots = [plot_rates(rates, f"failure rate per type: {target}", out / "failure_rates.png")]
    (out / "failure_rates.json").write_text(json.dumps(
        {t: {"probes": int(r.probes), "failures": int(r.failures), "failure_rate": float(r.failure_rate)} for t, r in rates.iterrows()}, indent=2
    ))
    lines = [f"# AuditDM report: {target}", "", f"{int(rates['probes'].sum())} answerable probes, {int(rates['failures'].sum())} failures.", ""]
    lines += ["| failure type | probes | failures | failure rate |", "|---|---|---|---|"]
    lines += [f"| {t} | {int(r.probes)} | {int(r.failures)} | {100 * r.failure_rate:.1f}% |" for t, r in rates.iterrows()]
    confused = confusions(audit)
    if len(confused):
        lines += ["", "## What the target said instead (most frequent among the failures)", "", "| expected | target said | failures |", "|---|---|---|"]
        lines += [f"| {r['expected']} | {r['target said']} | {r['failures']} |" for _, r in confused.iterrows()]
    comparison = None
    if compare is not None:
        other_audit = load_audit(compare)
        other = json.loads((Path(compare) / "manifest.json").read_text())["identity"]["target"]
        comparison = normalized_comparison(rates, failure_rates(other_audit, probe_types(other_audit, classifier)), target, other)
        plots.append(plot_comparison(comparison, f"normalised failure rates: {target} vs {other}", out / "comparison.png"))
        lines += ["", f"## {target} vs {other} (normalised, each row sums to 100)", "", f"| failure type | {target} | {other} |", "|---|---|---|"]
        lines += [f"| {t} | {r.iloc[0]:.1f} | {r.iloc[1]:.1f} |" for t, r in comparison.iterrows()]
    review = None
    labels = read_labels(Path(dataset_dir) / "labels.jsonl")
    if labels:
        review = review_table(labels)
        lines += ["", f"## Human review ({sum(review['count'])} pairs labelled)", "", "| type | percentage |", "|---|---|"]
        lines += [f"| {t} | {r.percentage:.1f}% |" for t, r in review.iterrows()]
    lines += ["", *[f"![{p.stem}]({p.name})" for p in plots], ""]
    markdown = out / "report.md"
    markdown.write_text("\n".join(lines))
    return Report(markdown, plots, rates, confused, comparison, review)
