"""The real ``auditdm`` console script, run as a user runs it."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import pytest

from auditdm_eval.records import FEATURES

AUDITDM = [str(Path(sys.executable).with_name("auditdm"))]


def run_cli(args, home, **kwargs):
    env = {**os.environ, "AUDITDM_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(AUDITDM + args, env=env, capture_output=True, text=True, timeout=600, **kwargs)


@pytest.mark.slow
def test_embedded_default_finds_the_planted_weakness_in_all_three_modes(world_auditor, auditdm_home, tmp_path):
    """No arguments: the planted-weakness world. The failures found are real (the ground truth in each
    record says the target answered wrongly), and the failure-type report names the weakness."""
    out = tmp_path / "out"
    done = run_cli(["audit", "--out", str(out), "--no-progress"], auditdm_home)
    assert done.returncode == 0, done.stderr
    assert "planted-weakness world" in done.stderr and "--preset tiny" in done.stderr, "says what runs and what else to pass"
    assert "target world-target-redgreen" in done.stderr and "on world:48." in done.stderr, "names the run's own target and pool"
    dataset = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="test")
    assert dataset.features == FEATURES
    assert sorted(set(dataset["mode"])) == ["edit", "question", "regenerate"]
    failures = dataset.filter(lambda row: row["is_failure"])
    assert failures.num_rows >= 5, "the warm-started auditor finds some of the swapped colours"
    genuine = [json.loads(row["extra"])["truth"]["answer"] not in (None, row["target_answer"]) for row in failures]
    assert sum(genuine) / len(genuine) >= 0.8, "what it flags are real failures of the target"
    about_red_green = [any(c in f"{row['question']} {row['consensus_answer']} {row['target_answer']}" for c in ("red", "green")) for row in failures]
    assert sum(about_red_green) / len(about_red_green) >= 0.8, "the failures are the planted weakness"
    report = run_cli(["report", str(out)], auditdm_home)
    assert report.returncode == 0, report.stderr
    rates = json.loads((out / "report" / "failure_rates.json").read_text())
    top_two = sorted(rates, key=lambda t: -rates[t]["failures"])[:2]
    assert {"color recognition", "counting"} & set(top_two), rates
    assert "What the target said instead" in report.stdout


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGINT], ids=["killed", "ctrl-c"])
def test_stopped_run_resumes_with_nothing_lost_or_duplicated(stop, tiny_paths, auditdm_home, tmp_path, image_folder):
    from conftest import ctrl_c_reaches_it, photo

    for i in range(3, 8):
        photo(i, (72, 56)).save(image_folder / f"more{i}.png")
    out = tmp_path / "out"
    args = [
        "audit", "--target", "tiny-paligemma2", "--ensemble", "tiny-gemma3-seed1,tiny-qwen2.5-vl",
        "--auditor", "tiny-gemma3", "--images", str(image_folder), "--out", str(out), "--batch-size", "1",
        "--cache-dir", str(tmp_path / "cache"), "--no-progress",
    ]
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(AUDITDM + args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_reaches_it)
    deadline = time.time() + 300
    while time.time() < deadline and len(list((out / "data").glob("test-*.parquet"))) < 2:
        time.sleep(0.05)
    process.send_signal(stop)
    stderr = process.communicate()[1]
    if stop == signal.SIGINT:
        assert process.returncode == 130, stderr
        assert "interrupted; what it finished is kept" in stderr and "Traceback" not in stderr, stderr
    written_before = len(list((out / "data").glob("test-*.parquet")))
    assert 2 <= written_before < 8, "the run was killed part-way"
    again = run_cli(args, auditdm_home)
    assert again.returncode == 0, again.stderr
    assert "(resumed)" in again.stderr
    ids = datasets.load_dataset("parquet", data_dir=str(out / "data"), split="test")["probe_id"]
    assert len(ids) == len(set(ids)) == 8
    assert not list((out / "data").glob(".*tmp")), "no half-written shard is left behind"


def test_unknown_model_and_foreign_out_dir_fail_clearly(tiny_paths, auditdm_home, tmp_path, image_folder):
    unknown = run_cli(
        ["audit", "--target", "gpt-vision-9", "--ensemble", "tiny-gemma3-seed1", "--auditor", "tiny-gemma3",
         "--images", str(image_folder), "--out", str(tmp_path / "o")],
        auditdm_home,
    )
    assert unknown.returncode == 2 and "unknown model 'gpt-vision-9'" in unknown.stderr
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    refused = run_cli(
        ["audit", "--target", "tiny-paligemma2", "--ensemble", "tiny-gemma3-seed1", "--auditor", "tiny-gemma3",
         "--images", str(image_folder), "--out", str(foreign)],
        auditdm_home,
    )
    assert refused.returncode == 2 and "not empty" in refused.stderr
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_models_lists_registered_names(auditdm_home):
    listed = run_cli(["models"], auditdm_home)
    assert listed.returncode == 0 and "paligemma2-3b-448" in listed.stdout and "tiny-qwen2.5-vl" in listed.stdout


@pytest.mark.parametrize(
    "argv, says, never",
    [
        ([], ["No models given", "the world-auditor"], ["with the models given"]),
        (["--preset", "world", "--target", "world-target-mirror"], ["the target world-target-mirror,", "the auditor world-auditor,"], ["No models given"]),
        (["--preset", "world", "--auditor", "world-auditor-looking"], ["the auditor world-auditor-looking,", "world-oracle-noisy-a, world-oracle-noisy-b"], ["No models given"]),
        (["--preset", "tiny", "--ensemble", "tiny-gemma3-seed2"], ["the references tiny-gemma3-seed2 (unanimous)"], ["TINY RANDOM"]),
    ],
)
def test_the_opening_message_names_the_models_the_run_audits_with(auditdm_home, argv, says, never):
    """A preset's own description only while its models run; a model given in their place is named instead."""
    from auditdm_eval.cli.audit import parse
    from auditdm_eval.config import preset_notice

    notice = preset_notice(parse(argv)[0])
    assert all(text in notice for text in says) and not any(text in notice for text in never), notice


def audit_args(image_folder, out, *extra):
    return ["audit", "--target", "tiny-paligemma2", "--ensemble", "tiny-gemma3-seed1", "--auditor", "tiny-gemma3",
            "--images", str(image_folder), "--out", str(out), "--no-progress", *extra]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch-size", "0"], "--batch-size must be at least 1 (got 0)"),
        (["--limit", "-1"], "--limit must be at least 1"),
        (["--mode", "nonsense"], "unknown or no mode(s) ['nonsense']"),
        (["--matcher", "fuzzy"], "--matcher: unknown matcher 'fuzzy'; choose one of: embedding, exact, judge"),
        (["--dtype", "float8"], "--dtype must be one of auto, float32"),
        (["--auditor-temperature", "0"], "--auditor-temperature must be above 0; leave --auditor-sampling off for greedy"),
        (["--auditor-top-p", "1.5"], "--auditor-top-p must be in (0, 1] (got 1.5)"),
    ],
)
def test_bad_arguments_exit_2_before_anything_is_written(auditdm_home, tmp_path, image_folder, capsys, extra, message):
    from auditdm_eval.cli import main

    out = tmp_path / "out"
    assert main(audit_args(image_folder, out, *extra)) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 4, stderr
    assert not out.exists(), "nothing is written for bad arguments, so the corrected rerun is not refused"


def test_corrected_rerun_after_a_bad_mode_runs(tiny_paths, auditdm_home, tmp_path, image_folder):
    """In a real process: the exit code and the one-line message, then the corrected rerun into the same --out."""
    out = tmp_path / "out"
    bad = run_cli(audit_args(image_folder, out, "--mode", "nonsense"), auditdm_home)
    assert bad.returncode == 2 and "unknown or no mode(s) ['nonsense']" in bad.stderr and "Traceback" not in bad.stderr
    fixed = run_cli(audit_args(image_folder, out, "--mode", "question", "--limit", "1"), auditdm_home)
    assert fixed.returncode == 0, fixed.stderr


def test_missing_image_folder_is_named_not_taken_for_a_hub_dataset(auditdm_home, tmp_path, capsys):
    from auditdm_eval.cli import main

    assert main(audit_args(tmp_path / "no" / "such" / "images", tmp_path / "out")) == 2
    stderr = capsys.readouterr().err
    assert "no such folder or file" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize("pool", ["world:abc", "dir:{tmp}/missing", "hf:{tmp}/missing"])
def test_a_pool_that_cannot_be_read_fails_before_out_is_touched(pool, auditdm_home, tmp_path, capsys):
    from auditdm_eval.cli import main

    out = tmp_path / "out"
    assert main(audit_args(pool.format(tmp=tmp_path), out)) == 2
    stderr = capsys.readouterr().err
    assert "error:" in stderr and ("expected world:" in stderr or "Pass " in stderr or "no images found" in stderr), stderr
    assert not out.exists(), "a bad --images writes nothing, so the corrected rerun starts clean"


def test_a_pool_whose_every_input_is_skipped_exits_nonzero_naming_each_fix(tiny_paths, auditdm_home, tmp_path, capsys):
    """Unusable inputs are skipped one by one (the rest of the pool is audited), but an audit left with
    no probe at all is not a success: it names each skipped input with its fix and exits 2."""
    from auditdm_eval.cli import main

    out = tmp_path / "out"
    assert main(audit_args("skimage:nosuchphoto,notaphoto", out)) == 2
    stderr = capsys.readouterr().err
    assert "no probe was written" in stderr, stderr
    for name in ("nosuchphoto", "notaphoto"):
        assert f"skimage:{name}: no such scikit-image sample -> use one of astronaut" in stderr, stderr
    assert main(audit_args("skimage:nosuchphoto,astronaut", out, "--mode", "question", "--overwrite")) == 0, "one usable photo is an audit"

def test_offline_hub_model_prints_the_message_alone_and_debug_the_traceback(tiny_paths, auditdm_home, tmp_path, image_folder, capsys):
    from auditdm_eval.cli import main

    args = ["audit", "--target", "nobody-here/no-such-vlm", "--ensemble", "tiny-gemma3-seed1", "--auditor", "tiny-gemma3",
            "--images", str(image_folder), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(args) == 1
    stderr = capsys.readouterr().err
    assert "could not load model 'nobody-here/no-such-vlm'" in stderr and "Traceback" not in stderr
    assert main(["--debug", *args]) == 1 and "Traceback" in capsys.readouterr().err


def test_config_yaml_then_flags(tiny_paths, auditdm_home, tmp_path, image_folder):
    """A --config YAML holds any field; a flag given beside it wins; the run records what ran."""
    config = tmp_path / "audit.yaml"
    config.write_text(
        f"target: tiny-paligemma2\nreferences: [tiny-gemma3-seed1]\nauditor: tiny-gemma3\nimages: {image_folder}\n"
        "modes: [question]\nanswer_max_new_tokens: 3\nauditor_max_new_tokens: 5\nlimit: 3\nprogress: false\n"
    )
    out = tmp_path / "out"
    done = run_cli(["audit", "--config", str(config), "--limit", "2", "--out", str(out)], auditdm_home)
    assert done.returncode == 0, done.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["identity"]["answer_max_new_tokens"] == 3 and manifest["identity"]["references"] == ["tiny-gemma3-seed1"]
    assert datasets.load_dataset("parquet", data_dir=str(out / "data"), split="test").num_rows == 2, "--limit 2 beat the file's 3"
    parts = manifest["parts"]
    assert parts["judge"] == {"name": "exact", "arguments": {"agreement": "unanimous", "matcher_model": None, "reward": "binary"}}
    assert parts["answer:target:tiny-paligemma2"]["arguments"]["max_new_tokens"] == 3


def test_every_audit_flag_has_help(auditdm_home):
    from dataclasses import fields

    from auditdm_eval.config import AuditConfig
    from auditdm_eval.engines import EngineConfig

    for config in (AuditConfig, EngineConfig):
        assert all(field.metadata.get("help") for field in fields(config)), config
    shown = run_cli(["audit", "--help"], auditdm_home)
    assert shown.returncode == 0 and "--ensemble" in shown.stdout and "planted-weakness" not in shown.stderr


@pytest.mark.parametrize("command", [["models"], ["audit", "--help"], ["compare-auditors", "--help"], ["report", "--help"]])
def test_the_package_and_light_commands_import_no_heavy_library(auditdm_home, command):
    """Importing the package (a harness plugin does), `auditdm models` and the `--help` of the commands
    whose flags need no model library take well under a second: torch, transformers and datasets load
    only where a command uses them."""
    probe = (
        "import sys, auditdm_eval, model_adapters; from auditdm_eval.cli import main\n"
        f"try:\n    main({command!r})\nexcept SystemExit:\n    pass\n"
        "print(sorted({'torch', 'transformers', 'datasets', 'diffusers'} & set(sys.modules)))"
    )
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = "world-auditor" if command == ["models"] else f"auditdm {command[0]}"
    assert shown in done.stdout and done.stdout.strip().endswith("[]"), done.stdout[-500:]
