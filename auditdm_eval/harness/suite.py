"""The paper's 16 benchmarks, each mapped to the harnesses' own task / dataset names.

``auditdm eval --suite paper16 --model <adapter> --harness lmms-eval|vlmeval`` runs them through
the harness with our adapters. Where a harness has no task for a benchmark the plan says so and
runs the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

HARNESS_FIELDS = {"lmms-eval": "lmms_eval", "vlmeval": "vlmeval"}


@dataclass(frozen=True)
class Benchmark:
    name: str
    answer_type: str  # multiple-choice | yes/no | open | caption | grounding
    lmms_eval: str | None
    vlmeval: str | None
    lmms_eval_note: str = ""
    vlmeval_note: str = ""
    lmms_eval_metric: str = ""  # what the leaderboard reads from the harness's result (blank: gap)
    vlmeval_metric: str = ""

    def note(self, harness: str) -> str:
        return getattr(self, f"{HARNESS_FIELDS[harness]}_note")

    def metric(self, harness: str) -> str:
        return getattr(self, f"{HARNESS_FIELDS[harness]}_metric")


NO_VLMEVAL = "VLMEvalKit 0.0.20 has no {} dataset"
VQA_EXACT = "exact_match (VQA accuracy)"
MCQ = "Overall accuracy"
PAPER16: tuple[Benchmark, ...] = (
    # PaliGemma2 transfer tasks (supplement A.3)
    Benchmark("VQAv2", "open", "vqav2_val", None, vlmeval_note=NO_VLMEVAL.format("VQAv2"), lmms_eval_metric=VQA_EXACT),
    Benchmark("GQA", "open", "gqa", "GQA_TestDev_Balanced", lmms_eval_metric="exact_match", vlmeval_metric=MCQ),
    Benchmark("OK-VQA", "open", "ok_vqa_val2014", None, vlmeval_note=NO_VLMEVAL.format("OK-VQA"), lmms_eval_metric=VQA_EXACT),
    Benchmark("AI2D", "multiple-choice", "ai2d", "AI2D_TEST", lmms_eval_metric="exact_match", vlmeval_metric=MCQ),
    Benchmark("DocVQA", "open", "docvqa_val", "DocVQA_VAL", lmms_eval_metric="anls", vlmeval_metric="Overall ANLS"),
    Benchmark("ChartQA", "open", "chartqa", "ChartQA_TEST", lmms_eval_metric="relaxed_overall", vlmeval_metric="Overall relaxed accuracy"),
    Benchmark(
        "RefCOCO", "grounding", "refcoco_bbox_rec_val", "RefCOCO",
        lmms_eval_note="the paper reports segmentation mIoU; lmms-eval scores boxes (referring-expression comprehension)",
        vlmeval_note="the paper reports segmentation mIoU; VLMEvalKit scores boxes (referring-expression comprehension)",
        lmms_eval_metric="refcoco_IoU (mean box IoU; also ACC@0.5)",
        vlmeval_metric="Average IoU (mean box IoU; also Precision@1 at IoU >= 0.5)",
    ),
    Benchmark(
        "COCO Caption", "caption", "coco2017_cap_val", "COCO_VAL",
        lmms_eval_note="PaliGemma reports Karpathy test; coco_karpathy_test fetches images by URL, so COCO 2017 val is used",
        vlmeval_note="COCO_VAL is COCO 2014 val, not the Karpathy test split",
        lmms_eval_metric="coco_CIDEr", vlmeval_metric="CIDEr",
    ),
    # Gemma3 benchmarks (supplement A.4, evaluated with VLMEvalKit in the paper)
    Benchmark("MMBench-v1.1", "multiple-choice", None, "MMBench_DEV_EN_V11", lmms_eval_note="lmms-eval 0.7.3 has no MMBench v1.1 task (mmbench_en_dev is v1.0)", vlmeval_metric=MCQ),
    Benchmark("MMT-Bench", "multiple-choice", "mmt_val", "MMT-Bench_VAL", lmms_eval_metric="accuracy", vlmeval_metric=MCQ),
    Benchmark("SEED-Bench-IMG", "multiple-choice", "seedbench", "SEEDBench_IMG", lmms_eval_metric="seed_image", vlmeval_metric=MCQ),
    Benchmark("MME", "yes/no", "mme", "MME", lmms_eval_metric="mme_perception_score + mme_cognition_score", vlmeval_metric="perception + reasoning"),
    Benchmark("MMMU", "multiple-choice", "mmmu_val", "MMMU_DEV_VAL", lmms_eval_metric="mmmu_acc", vlmeval_metric=MCQ),
    Benchmark("MMStar", "multiple-choice", "mmstar", "MMStar", lmms_eval_metric="average", vlmeval_metric=MCQ),
    Benchmark("RealWorldQA", "multiple-choice", "realworldqa", "RealWorldQA", lmms_eval_metric="exact_match", vlmeval_metric=MCQ),
    Benchmark("POPE", "yes/no", "pope", "POPE", lmms_eval_metric="pope_accuracy", vlmeval_metric="acc (Overall)"),
)

SUITES: dict[str, tuple[Benchmark, ...]] = {
    "paper16": PAPER16,
    "paligemma8": PAPER16[:8],
    "gemma8": PAPER16[8:],
}


@dataclass
class SuitePlan:
    harness: str
    names: list[str]  # the harness's own task / dataset names to run
    benchmarks: list[Benchmark]  # the benchmarks those names cover, in the same order
    gaps: list[Benchmark]  # benchmarks this harness cannot run

    def describe(self) -> str:
        lines = [
            f"{b.name:16s} -> {name} [{b.metric(self.harness)}]" + (f"   ({b.note(self.harness)})" if b.note(self.harness) else "")
            for b, name in zip(self.benchmarks, self.names)
        ]
        lines += [f"{b.name:16s} -> not available in {self.harness}: {b.note(self.harness)}" for b in self.gaps]
        return "\n".join(lines)


def plan_suite(suite: str, harness: str, only: list[str] | None = None) -> SuitePlan:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; choose one of: {', '.join(SUITES)}")
    if harness not in HARNESS_FIELDS:
        raise ValueError(f"unknown harness {harness!r}; choose one of: {', '.join(HARNESS_FIELDS)}")
    benchmarks = list(SUITES[suite])
    if only:
        known = {b.name.lower(): b for b in benchmarks}
        missing = [name for name in only if name.lower() not in known]
        if missing:
            raise ValueError(f"benchmark(s) {missing} are not in suite {suite!r}: {', '.join(b.name for b in benchmarks)}")
        benchmarks = [known[name.lower()] for name in only]
    field = HARNESS_FIELDS[harness]
    runnable = [b for b in benchmarks if getattr(b, field)]
    return SuitePlan(harness, [getattr(b, field) for b in runnable], runnable, [b for b in benchmarks if not getattr(b, field)])


def markdown_table(suite: str = "paper16") -> str:
    """The suite's mapping as the README shows it: each harness's task and the metric read from it."""

    def cell(benchmark: Benchmark, harness: str) -> str:
        name = getattr(benchmark, HARNESS_FIELDS[harness])
        if not name:
            return f"— ({benchmark.note(harness)})"
        return f"`{name}`: {benchmark.metric(harness)}"

    lines = ["| benchmark | lmms-eval task: metric | VLMEvalKit dataset: metric |", "|---|---|---|"]
    lines += [f"| {b.name} | {cell(b, 'lmms-eval')} | {cell(b, 'vlmeval')} |" for b in SUITES[suite]]
    return "\n".join(lines) + "\n"
