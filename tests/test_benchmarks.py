"""The benchmark scripts run as users run them (on the tiny models here; their figures come from real runs)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_real_size_benchmark_times_every_stage_at_fixed_lengths_without_the_cache(tiny_paths, tmp_path):
    """``benchmarks/real_size.py`` over the audit's stages: each batch size on its own photos (no cache
    hits), every question and answer at its fixed length, a JSON report and its chart, redrawn from JSON."""
    report_path, chart = tmp_path / "report.json", tmp_path / "chart.png"
    command = [
        sys.executable, "benchmarks/real_size.py", "--auditor", "tiny-gemma3", "--target", "tiny-paligemma2",
        "--reference", "tiny-qwen2.5-vl", "tiny-gemma3-seed1", "--batch-sizes", "1", "3", "--single-images", "2",
        "--images", "3", "--question-tokens", "7", "--answer-tokens", "3", "--json", str(report_path), "--plot", str(chart),
    ]
    run = subprocess.run(command, cwd=ROOT, env=os.environ, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert [trial["batch_size"] for trial in report["trials"]] == [1, 3]
    assert [trial["probes"] for trial in report["trials"]] == [2, 3]
    stages = {"auditor:question", "answer:target:tiny-paligemma2", "answer:reference:tiny-qwen2.5-vl",
              "answer:reference:tiny-gemma3-seed1", "judge"}
    for trial in report["trials"]:
        assert trial["failed"] == 0 and trial["answer_cache_hits"] == 0
        assert set(trial["seconds"]) == stages and all(trial["seconds"][name] > 0 for name in stages - {"judge"})
        assert trial["words_written"] == {"question": [7, 7], "target": [3, 3]}
    assert report["models"]["reference-1"]["parameters"] > 0 and chart.stat().st_size > 10_000
    redrawn = tmp_path / "redrawn.png"
    subprocess.run([sys.executable, "benchmarks/real_size.py", "--plot", str(redrawn), "--from-json", str(report_path)],
                   cwd=ROOT, check=True)
    assert redrawn.stat().st_size > 10_000


def test_real_size_benchmark_refuses_bad_input_naming_the_fix(tmp_path):
    def run(*flags):
        result = subprocess.run([sys.executable, "benchmarks/real_size.py", *flags], cwd=ROOT, env=os.environ,
                                capture_output=True, text=True, check=False)
        return result.returncode, result.stderr

    code, message = run("--auditor", "no-such-model", "--json", str(tmp_path / "r.json"))
    assert code == 1 and "unknown model 'no-such-model'" in message and "Traceback" not in message
    code, message = run("--batch-sizes", "8", "0")
    assert code == 2 and "--batch-sizes must be 1 or more" in message
    code, message = run("--plot", str(tmp_path / "c.png"), "--from-json", str(tmp_path / "missing.json"))
    assert code == 2 and "no such report" in message and not (tmp_path / "c.png").exists()


def test_real_size_grpo_benchmark_times_each_step_of_the_real_trainer(tiny_paths, tmp_path):
    """``benchmarks/real_size_grpo.py``: the trainer ``train-auditor`` builds from the LoRA recipe, each step timed
    with the reward's share, every completion at its fixed length, the gradient norm recorded."""
    report_path = tmp_path / "grpo.json"
    command = [
        sys.executable, "benchmarks/real_size_grpo.py", "--auditor", "tiny-gemma3", "--target", "tiny-paligemma2",
        "--references", "tiny-qwen2.5-vl", "--steps", "2", "--batch", "4", "--generations", "2", "--images", "4",
        "--completion-tokens", "5", "--answer-tokens", "2", "--json", str(report_path),
    ]
    run = subprocess.run(command, cwd=ROOT, env=os.environ, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["grpo"]["use_peft"] is True and report["trainable_parameters"] > 0
    assert [step["step"] for step in report["steps"]] == [1, 2]
    for step in report["steps"]:
        assert step["reward_calls"] == 1 and 0 < step["reward_seconds"] < step["seconds"]
        assert step["completion_length"] == 5 and math.isfinite(step["grad_norm"])
    diagnosed = subprocess.run(command[:-1] + [str(tmp_path / "diagnosis.json"), "--diagnose", "--random-advantages"], cwd=ROOT,
                               env=os.environ, capture_output=True, text=True, check=False)
    assert diagnosed.returncode == 0, diagnosed.stderr[-2000:]
    diagnosis_report = json.loads((tmp_path / "diagnosis.json").read_text())
    assert [step["step"] for step in diagnosis_report["steps"]] == [1]  # diagnosed, then stopped
    diagnosis = diagnosis_report["diagnosis"]
    for variant in ("as_trained", "torch_log_probs", "sdpa_math", "anomaly", "no_gradient_checkpointing", "traced"):
        assert diagnosis[variant]["non_finite"] == 0 and diagnosis[variant]["parameters_with_gradient"] > 0, variant
    assert diagnosis["inputs"]["advantages"]["nonzero"] == 4 and diagnosis["as_trained"]["norm_of_the_finite"] > 0
    assert diagnosis["layers"] and all(layer["smallest_row_rms"] >= 0 for layer in diagnosis["layers"].values())
    assert all(layer["gradient_finite"] for layer in diagnosis["layers"].values() if "gradient_finite" in layer)
    lone = subprocess.run([sys.executable, "benchmarks/real_size_grpo.py", "--random-advantages"], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert lone.returncode == 2 and "add --diagnose" in lone.stderr
    bad = subprocess.run([sys.executable, "benchmarks/real_size_grpo.py", "--batch", "6", "--generations", "4"],
                         cwd=ROOT, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "must be a multiple of --generations 4" in bad.stderr
    refused = subprocess.run(command[:-2] + ["--", "--dtype", "bogus"], cwd=ROOT, env=os.environ, capture_output=True, text=True,
                             check=False)
    assert refused.returncode == 2 and "--dtype must be one of auto" in refused.stderr and "Traceback" not in refused.stderr


def test_the_gradient_diagnosis_finds_where_a_nan_gradient_begins(monkeypatch):
    """``benchmarks/gradient_diagnosis.py`` recomputes a step's loss: it names the backward function that first
    returns NaN, the parameters it poisons, and the layer whose incoming gradient turns non-finite."""
    import importlib

    import torch

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    diagnose = importlib.import_module("gradient_diagnosis")

    class ToyDecoderLayer(torch.nn.Module):
        def __init__(self, root: bool) -> None:
            super().__init__()
            self.proj, self.root = torch.nn.Linear(3, 3), root

        def forward(self, x):
            y = self.proj(x)
            return (y * 0).sqrt() + y if self.root else y  # sqrt's infinite slope at 0, times 0: NaN going back

    class Toy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList([ToyDecoderLayer(False), ToyDecoderLayer(True), ToyDecoderLayer(False)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    class Trainer:
        def compute_loss(self, model, inputs, num_items_in_batch=None):
            return model(inputs["x"]).sum()

    torch.manual_seed(0)
    model, trainer = Toy(), Trainer()
    capture = diagnose.LossCapture(trainer)
    trainer.compute_loss(model, {"x": torch.randn(2, 3)}, num_items_in_batch=None)
    with torch.no_grad():  # as a harness import leaves autograd (vlmeval switches it off process-wide)
        as_trained = diagnose.run_variant(capture, model, diagnose.unchanged)
    assert as_trained["non_finite"] == 4 and as_trained["parameters_with_gradient"] == 6  # layers 0 and 1; 2 is finite
    assert as_trained["non_finite_by_module"] == {"layers.N.proj.weight": 2, "layers.N.proj.bias": 2}
    anomaly = diagnose.run_variant(capture, model, lambda: torch.autograd.detect_anomaly(check_nan=True))
    assert "MulBackward0" in anomaly["error"] and "y * 0" in anomaly["forward_trace"]
    trace: dict = {}
    diagnose.run_variant(capture, model, lambda: diagnose.layer_trace(model, trace))
    finite = {name: layer["gradient_finite"] for name, layer in trace.items()}
    assert finite == {"layers.0": False, "layers.1": True, "layers.2": True}
    assert trace["layers.0"]["gradient_nan"] == 6 and trace["layers.2"]["forward_finite"]
    assert diagnose.masked_rows(torch.tensor([[True, False], [False, False]]))["rows_all_blocked"] == 1


def test_supervised_probe_teaches_the_exposing_questions_and_scores_them_on_held_out_scenes(world_auditor, tmp_path):
    """``benchmarks/supervised_probe.py``: the warm start fine-tuned on questions that expose the weakness,
    its greedy questions scored against the ground truth before and after; a bad weakness exits 2."""
    report_path = tmp_path / "probe.json"
    command = [
        sys.executable, "benchmarks/supervised_probe.py", "--weakness", "mirror", "--auditor", str(world_auditor),
        "--kind", "existence", "--steps", "2", "--batch", "4", "--every", "1", "--pool", "world:12:7", "--json", str(report_path),
    ]
    run = subprocess.run(command, cwd=ROOT, env=os.environ, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert list(report["held_out_success_by_step"]) == ["0", "1", "2"]
    assert all(0 <= rate <= report["scene_aware_ceiling"] <= 1 for rate in report["held_out_success_by_step"].values())
    assert report["scene_aware_ceiling"] >= report["ceiling_of_the_kind"] > 0.5 and report["kind"] == "existence"
    bad = subprocess.run([sys.executable, "benchmarks/supervised_probe.py", "--weakness", "no-such"], cwd=ROOT,
                         env=os.environ, capture_output=True, text=True, check=False)
    assert bad.returncode == 2 and "unknown weakness 'no-such'" in bad.stderr and "Traceback" not in bad.stderr
    unknown = subprocess.run([sys.executable, "benchmarks/supervised_probe.py", "--auditor", "no-such-model"], cwd=ROOT,
                             env=os.environ, capture_output=True, text=True, check=False)
    assert unknown.returncode == 1 and "unknown model 'no-such-model'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_the_training_benchmark_lets_its_auditor_write_as_long_as_it_was_trained_to(monkeypatch):
    """``benchmarks/auditor_training.py`` compares auditors at the completion length they trained with: the
    recipe's, or the one ``--train-args`` sets in its place (a warm start that reasons first needs 48)."""
    import importlib

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bench = importlib.import_module("auditor_training")
    recipe = {"max_completion_length": 24}
    assert bench.trained_length(recipe, ["--max_steps", "1500"]) == 24
    assert bench.trained_length(recipe, ["--max_steps", "10", "--max_completion_length", "48"]) == 48
    assert bench.trained_length(recipe, ["--max_completion_length=40"]) == 40


def test_the_training_benchmark_refuses_a_recipe_it_cannot_train_before_training_anything(tmp_path):
    """With no --auditor the benchmark trains the recipe's: a recipe that names none, or no recipe at all,
    exits 2 with the fix before any folder is made."""
    nameless = tmp_path / "nameless.yaml"
    nameless.write_text("target: world-target-mirror\nmax_completion_length: 24\n")
    for recipe, message in ((nameless, "names no auditor"), (tmp_path / "missing.yaml", "no such file")):
        run = subprocess.run([sys.executable, "benchmarks/auditor_training.py", "--recipe", str(recipe), "--work", str(tmp_path / "work")],
                             cwd=ROOT, env=os.environ, capture_output=True, text=True, check=False)
        assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr, run.stderr[-1000:]
    assert not (tmp_path / "work").exists()


def test_the_twin_look_benchmark_counts_every_thing_held_twice_and_reads_the_cells_a_look_names(auditdm_home, tmp_path):
    """``benchmarks/twin_looks.py``: each thing a held-out pool holds twice is tried once, lone things up to
    the limit; the looking start, taught to name the one cell it looks at, names lone things alone."""
    import importlib

    from auditdm_eval.world import describe, sample_scene

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        twin_looks = importlib.import_module("twin_looks")
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    assert twin_looks.named_cells("top left", ", bottom center: large red circle </think>") == ["top left", "bottom center"]
    assert twin_looks.named_cells("top left", ": large red circle </think> where") == ["top left"]
    report_path = tmp_path / "twins.json"
    command = [sys.executable, "benchmarks/twin_looks.py", "world-auditor-looking", "--scenes", "40", "--lone-limit", "15",
               "--json", str(report_path)]
    run = subprocess.run(command, cwd=ROOT, env=os.environ, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    found = json.loads(report_path.read_text())["auditors"]["world-auditor-looking"]
    held_twice = 0
    for index in range(40):  # a thing is what a description calls it: "large red circle", "red clock showing 3"
        things = [part.rsplit(" in the ", 1)[0].removeprefix("a ").removeprefix("an ") for part in describe(sample_scene(7, index)).split(", ") if part]
        held_twice += len({thing for thing in things if things.count(thing) > 1})
    assert found["twins"] == held_twice > 0 and found["lone"] == 15
    assert found["share_of_lone_named_alone"] > 0.8, "the looking start names the one cell it looks at"
    unknown = subprocess.run([sys.executable, "benchmarks/twin_looks.py", "no-such-model"], cwd=ROOT, env=os.environ,
                             capture_output=True, text=True, check=False)
    assert unknown.returncode == 1 and "unknown model 'no-such-model'" in unknown.stderr and "Traceback" not in unknown.stderr
