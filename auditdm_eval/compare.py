"""``auditdm compare-auditors``: how well auditors find a target's failures on a held-out image pool.

Each auditor (a model or checkpoint; ``<model>@baseline`` for the prompt-engineering baseline; or
an audit already on disk) audits the same pool against the same target and references, and is
scored on what it wrote:

- failure-search success rate: discovered failures / probes it wrote (failed ones included), with a
  95% Wilson interval, per image where an image has several probes (modes, ``--probes_per_image``);
- answerable share: probes the reference ensemble agreed on / probes written;
- distinct probes per 100: distinct auditor texts (question, caption or edit command) of the probes
  made, per 100 probes written (mode collapse shows up here, collapse onto empty texts included);
- distinct in 100: the distinct texts expected among 100 of the probes written, drawn at random
  (rarefaction). The share above falls as the pool grows even when the auditor does not change (30
  texts written 10 times each over 300 probes: 10 per 100 written, 29.5 in 100 drawn); this one
  does not, so audits of different sizes compare;
- precision and recall against the ground truth, where the records carry it (the planted-weakness
  world's annotator): a flagged failure is genuine when the question applies to the image and the
  target's answer is not the true one; recall is over every probe the target truly got wrong;
- the same per failure type.

On a world pool, the question mode's rates sit beside two ceilings computed from the same target,
references and judge over every question the world can ask of each scene: the scene-aware ceiling
(share of scenes where some question exposes a genuine failure: the best any auditor can do with
one question per scene) and the blind ceiling (the best single question asked of every scene: the
best an auditor that ignores the image can do).
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .audited import type_label
from .config import AuditConfig
from .matching import normalize_answer

BASELINE_SUFFIX = "@baseline"


@dataclass(frozen=True)
class AuditorUnderTest:
    label: str
    auditor: str | None = None  # a model to audit with
    prompt_variant: str = "auditdm"
    audit_dir: str | None = None  # or an audit already on disk


def auditor_under_test(spec: str) -> AuditorUnderTest:
    """``<model>``, ``<model>@<prompt variant>`` (``@baseline``), or the folder of an existing audit."""
    path = Path(spec)
    if (path / "manifest.json").is_file():
        return AuditorUnderTest(label=path.name, audit_dir=str(path))
    model, sep, variant = spec.rpartition("@") if "@" in spec else (spec, "", "auditdm")
    return AuditorUnderTest(label=spec if sep else model, auditor=model, prompt_variant=variant or "auditdm")


def wilson(successes: int, trials: float, z: float = 1.96) -> tuple[float, float]:
    if trials <= 0:
        return (math.nan, math.nan)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (max(0.0, centre - half), min(1.0, centre + half))


def clustered_wilson(successes_per_cluster: Sequence[tuple[int, int]], z: float = 1.96) -> tuple[float, float]:
    """A Wilson interval for probes that come in clusters (several probes of one scene: sampling seeds,
    probes per image): ``(successes, trials)`` per cluster. Probes of one scene succeed or fail
    together more often than independent ones, so the interval is Wilson's over the effective number
    of trials, the trials divided by the design effect (the variance of the cluster-mean estimate over
    the variance it would have if every probe were independent; never below 1)."""
    clusters = [(s, n) for s, n in successes_per_cluster if n]
    trials = sum(n for _, n in clusters)
    if not trials:
        return (math.nan, math.nan)
    rate = sum(s for s, _ in clusters) / trials
    independent = rate * (1 - rate) / trials
    if len(clusters) == trials or independent == 0:  # one probe per scene: Wilson's own interval
        return wilson(sum(s for s, _ in clusters), trials, z)
    if len(clusters) == 1:  # one scene, however many probes: one scene's evidence
        return wilson(rate, 1, z)
    # the ratio estimator's variance (clusters of unequal size): residuals summed per cluster
    residuals = [(s - rate * n) for s, n in clusters]
    k = len(clusters)
    clustered = k / (k - 1) * sum(r * r for r in residuals) / (trials * trials)
    effective = trials / max(1.0, clustered / independent)
    return wilson(rate * effective, effective, z)


def rarefied_distinct(counts: Sequence[int], written: int, draws: int = 100) -> float:
    """The distinct texts expected among ``draws`` of ``written`` probes drawn without replacement, where
    ``counts`` are each distinct text's probes (probes without a text make up the rest and add none).
    Below ``draws`` probes, the distinct share scaled to ``draws`` (the two agree at ``draws``)."""
    if not written:
        return math.nan
    if written <= draws:
        return draws * len(counts) / written

    def log_choose(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    total = log_choose(written, draws)
    # a text is missed when all the draws fall among the other probes
    return sum(1.0 - (math.exp(log_choose(written - c, draws) - total) if written - c >= draws else 0.0) for c in counts)


@dataclass
class Scores:
    probes_written: int
    failures: int
    success_rate: float
    success_interval: tuple[float, float]
    answerable_share: float
    distinct_per_100: float
    distinct_in_100: float
    precision: float | None = None  # None: no ground truth in the records
    recall: float | None = None
    genuine_failures: int | None = None


@dataclass
class AuditorReport:
    label: str
    audit_dir: str
    overall: Scores
    per_mode: dict[str, Scores] = field(default_factory=dict)
    per_type: dict[str, Scores] = field(default_factory=dict)


def auditor_text(row: dict[str, Any]) -> str:
    written = row["caption"] or row["edit_command"] or (row["question"] if row["question_origin"] == "auditor" else "")
    return normalize_answer(written or "")


def truth_of(row: dict[str, Any]) -> dict[str, Any] | None:
    return json.loads(row["extra"]).get("truth") if row.get("extra") else None


def is_genuine(row: dict[str, Any], truth: dict[str, Any]) -> bool:
    """The target truly got this probe wrong: the question applies and its answer is not the truth."""
    return truth.get("answer") is not None and normalize_answer(row["target_answer"] or "") != normalize_answer(str(truth["answer"]))


def scene_outcomes(rows: Sequence[dict[str, Any]], unmade: int = 0) -> list[tuple[int, int]]:
    """(failures, probes) per source image: its probes of several modes, seeds or samples are one
    cluster. A probe never made has no record of its image: it stands alone."""
    by_scene: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        by_scene[row["source_id"]][0] += bool(row["is_failure"])
        by_scene[row["source_id"]][1] += 1
    return [(found, probes) for found, probes in by_scene.values()] + [(0, 1)] * unmade


def score_rows(rows: Sequence[dict[str, Any]], unmade: int) -> Scores:
    """``rows``: the audited probes; ``unmade``: probes the auditor wrote that never became one (a
    caption the renderer could not draw, an empty question): they count as written, not found."""
    written = len(rows) + unmade
    failures = sum(bool(row["is_failure"]) for row in rows)
    answerable = sum(bool(row["ensemble_agrees"]) for row in rows)
    # an unmade probe adds no variety: an auditor collapsed onto empty texts must not look diverse
    texts = Counter(auditor_text(row) for row in rows)
    truths = [truth_of(row) for row in rows]
    scores = Scores(
        probes_written=written,
        failures=failures,
        success_rate=failures / written if written else math.nan,
        success_interval=clustered_wilson(scene_outcomes(rows, unmade)),
        answerable_share=answerable / written if written else math.nan,
        distinct_per_100=100 * len(texts) / written if written else math.nan,
        distinct_in_100=rarefied_distinct(list(texts.values()), written),
    )
    if rows and all(truth is not None for truth in truths):
        flagged = [is_genuine(row, truth) for row, truth in zip(rows, truths) if row["is_failure"]]
        wrong = [bool(row["is_failure"]) for row, truth in zip(rows, truths) if is_genuine(row, truth)]
        scores.genuine_failures = sum(flagged)
        scores.precision = sum(flagged) / len(flagged) if flagged else math.nan
        scores.recall = sum(wrong) / len(wrong) if wrong else math.nan
    return scores


def report_of(label: str, audit_dir: str | Path) -> AuditorReport:
    from .store import AuditStore, load_audit  # datasets: not for --help

    store = AuditStore(audit_dir)
    # the auditor's text never became a probe: it wrote nothing usable, or the renderer could not draw it
    unmade = Counter(issue.mode for issue in store.issues() if issue.stage.startswith(("auditor:", "render:")))
    # an auditor none of whose texts became a probe still wrote them: it scores 0, it does not stop the comparison
    audited = bool(store.shards()) or not unmade
    rows = list(load_audit(audit_dir).remove_columns(["image", "source_image"])) if audited else []
    by_mode, by_type = defaultdict(list), defaultdict(list)
    for row in rows:
        by_mode[row["mode"]].append(row)
        truth = truth_of(row)
        by_type[(truth or {}).get("failure_type") or type_label(row["failure_type"])].append(row)
    return AuditorReport(
        label=label,
        audit_dir=str(audit_dir),
        overall=score_rows(rows, sum(unmade.values())),
        per_mode={mode: score_rows(group, unmade.get(mode, 0)) for mode, group in sorted(by_mode.items())},
        per_type={kind: score_rows(group, 0) for kind, group in sorted(by_type.items())},
    )


# -- ceilings on a world pool -------------------------------------------------------------------
@dataclass
class Ceilings:
    scenes: int
    scene_aware: float  # share of scenes where some question exposes a genuine failure
    blind: float  # the best single question's share of scenes
    blind_question: str
    questions_per_scene: float


def world_ceilings(config: AuditConfig) -> Ceilings | None:
    """The question mode's ceilings on ``config``'s pool, or None when the pool is no world pool."""
    from model_adapters import GenerationRequest, GenerationSettings

    from .records import Answer
    from .resources import ModelRef, Resources
    from .runner import source_options
    from .sources import SourceImage, iter_sources
    from .stages.judge import JudgeSpec
    from .world import Scene, answer, parse_question, question_space

    if not config.images.startswith("world:"):
        return None
    resources = Resources()

    def model(name: str):
        return resources.model(ModelRef(name, config.dtype, config.device, config.model_batch_size, config.trust_remote_code))

    judge = JudgeSpec(config.matcher, None, config.agreement_rule, config.reward).build(resources).judge
    target, references = model(config.target), [model(name) for name in config.references]
    settings = GenerationSettings(max_new_tokens=config.answer_max_new_tokens)

    def answers(which, image, scene, questions: list[str]) -> list[str]:
        if hasattr(which, "answer_scene"):  # a world model answers from the scene itself: no decoding per question
            return [which.answer_scene(scene, q) for q in questions]
        return which.generate([GenerationRequest((image,), q, "vqa", settings) for q in questions])

    exposing_scenes, sizes, by_question = 0, [], Counter()
    for item in iter_sources(config.images, source_options(config)):
        if not isinstance(item, SourceImage) or "scene" not in item.extra:
            continue
        scene = Scene.from_dict(item.extra["scene"])
        questions = question_space(scene)
        sizes.append(len(questions))
        said = answers(target, item.image, scene, questions)
        heard = [answers(reference, item.image, scene, questions) for reference in references]
        exposing = set()
        for i, question in enumerate(questions):
            target_answer = Answer(target.model_id, said[i], normalize_answer(said[i]))
            refs = [Answer(r.model_id, h[i], normalize_answer(h[i])) for r, h in zip(references, heard)]
            verdict = judge.judge(target_answer, refs, question)
            truth = answer(parse_question(question), scene)
            if verdict.is_failure and truth is not None and normalize_answer(said[i]) != normalize_answer(truth):
                exposing.add(question)
        exposing_scenes += bool(exposing)
        by_question.update(exposing)
    if not sizes:
        return None
    best, count = by_question.most_common(1)[0] if by_question else ("", 0)
    return Ceilings(len(sizes), exposing_scenes / len(sizes), count / len(sizes), best, sum(sizes) / len(sizes))


# -- the comparison -----------------------------------------------------------------------------
@dataclass
class Comparison:
    pool: str
    target: str
    references: list[str]
    reports: list[AuditorReport]
    ceilings: Ceilings | None
    files: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "pool": self.pool, "target": self.target, "references": self.references,
            "ceilings": asdict(self.ceilings) if self.ceilings else None,
            "auditors": [asdict(report) for report in self.reports],
        }


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "auditor"


def compare_auditors(auditors: Sequence[str], base: AuditConfig, out: str | Path, engine: str = "local") -> Comparison:
    from .runner import run_audit

    out = Path(out)
    if base.images.startswith("world:") and base.annotator is None:
        base = replace(base, annotator="world")  # ground truth into every record, so precision is measured
    reports = []
    for spec in auditors:
        under_test = auditor_under_test(spec)
        if under_test.audit_dir is None:
            audit_dir = out / "audits" / slug(under_test.label)
            run_audit(replace(base, auditor=under_test.auditor, prompt_variant=under_test.prompt_variant, out=str(audit_dir)), engine)
        else:
            audit_dir = Path(under_test.audit_dir)
        reports.append(report_of(under_test.label, audit_dir))
    ceilings = world_ceilings(base) if "question" in base.modes else None
    comparison = Comparison(base.images, base.target, list(base.references), reports, ceilings)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(comparison.to_json(), indent=2, default=float))
    comparison.files = [out / "compare.json", plot(comparison, out / "compare.png"), write_markdown(comparison, out / "compare.md")]
    return comparison


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def table_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    for report in comparison.reports:
        s = report.overall
        low, high = s.success_interval
        rows.append([
            report.label, str(s.probes_written), str(s.failures), f"{_pct(s.success_rate)} [{_pct(low)}, {_pct(high)}]",
            _pct(s.answerable_share), f"{s.distinct_per_100:.0f}", f"{s.distinct_in_100:.1f}", _pct(s.precision), _pct(s.recall),
        ])
    return rows


HEADER = ["auditor", "probes", "failures", "success rate [95% CI]", "answerable", "distinct/100", "distinct in 100", "precision", "recall"]


def write_markdown(comparison: Comparison, path: Path) -> Path:
    lines = [
        f"# Auditors compared on `{comparison.pool}`", "",
        f"Target `{comparison.target}`; references {', '.join(f'`{r}`' for r in comparison.references)}.", "",
        "| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in table_rows(comparison)),
    ]
    if comparison.ceilings:
        c = comparison.ceilings
        lines += ["", f"Question-mode ceilings over {c.scenes} scenes ({c.questions_per_scene:.0f} questions each): "
                  f"scene-aware {_pct(c.scene_aware)}; blind {_pct(c.blind)} (the best single question: \"{c.blind_question}\")."]
    for report in comparison.reports:
        lines += ["", f"## {report.label}", "", "| failure type | probes | failures | success | precision |", "|---|---|---|---|---|"]
        lines += [f"| {kind} | {s.probes_written} | {s.failures} | {_pct(s.success_rate)} | {_pct(s.precision)} |" for kind, s in report.per_type.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _axis_label(label: str, width: int = 18) -> str:
    """A checkpoint's path shortened to its last two folders, wrapped to fit under its bar (a prompt
    variant, ``@baseline``, on a line of its own)."""
    parts = [part for part in label.split("/") if part]
    short = "/".join(parts[-2:]) if len(parts) > 2 else label
    return "\n".join(textwrap.fill(line, width) for line in short.replace("@", "\n@").split("\n"))


def plot(comparison: Comparison, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [_axis_label(report.label) for report in comparison.reports]
    rates = [100 * report.overall.success_rate for report in comparison.reports]
    errors = [
        [100 * (r.overall.success_rate - r.overall.success_interval[0]) for r in comparison.reports],
        [100 * (r.overall.success_interval[1] - r.overall.success_rate) for r in comparison.reports],
    ]
    fig, ax = plt.subplots(figsize=(max(6, 2.0 * len(labels) + 3), 4.2))
    bars = ax.bar(labels, rates, yerr=errors, capsize=4, color="#2e86c1")
    for bar, rate, above in zip(bars, rates, errors[1]):  # above the interval's upper end
        ax.annotate(f"{rate:.1f}%", (bar.get_x() + bar.get_width() / 2, rate + above), ha="center", va="bottom", xytext=(0, 3), textcoords="offset points")
    if comparison.ceilings:
        ax.axhline(100 * comparison.ceilings.scene_aware, color="#c0392b", linestyle="--", label="scene-aware ceiling")
        ax.axhline(100 * comparison.ceilings.blind, color="#7f8c8d", linestyle=":", label="blind ceiling")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")  # beside the bars, never over them
    ax.set_ylabel("failure-search success rate (%)")
    ax.set_ylim(0, 105)
    ax.set_title(f"{comparison.target} on {comparison.pool}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
