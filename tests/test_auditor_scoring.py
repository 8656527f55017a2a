"""The auditor's reward terms and the comparison of auditors, on the planted-weakness world with
scripted auditors (no training): what each measures, exactly."""

import json
import math
from pathlib import Path

import pytest

from auditdm_eval.compare import (
    _axis_label,
    auditor_under_test,
    clustered_wilson,
    compare_auditors,
    rarefied_distinct,
    wilson,
)
from auditdm_eval.config import AuditConfig
from auditdm_eval.errors import ConfigError
from auditdm_eval.reward import AuditReward
from auditdm_eval.runner import build_plan
from auditdm_eval.stages.auditor import AuditorSpec
from auditdm_eval.training.grpo import AuditorTrainingArguments
from auditdm_eval.training.rewards import RewardTerms
from auditdm_eval.world import decode, describe, draw, sample_scene
from model_adapters import GenerationSettings, ModelSpec, register_backend, register_model

WORLD = dict(
    references=["world-oracle"], images="world:30:5", regenerate_renderer="world", regenerate_model="world",
    edit_renderer="world", edit_model="world", answer_max_new_tokens=4, no_cache=True, progress=False,
)


class ScriptedAuditor:
    """Writes a question about the first red or green object it sees (sighted), or always the same
    question (blind); captions and commands from the decoded scene."""

    def __init__(self, path, sighted=True, silent=False, **_):
        self.sighted, self.silent = sighted, silent
        self.model_id = "silent-auditor" if silent else "sighted-auditor" if sighted else "blind-auditor"
        self.fingerprint = self.model_id

    def write(self, request):
        if self.silent:  # a policy collapsed onto the end-of-text token
            return ""
        scene = decode(request.images[0])
        if "caption" in request.prompt:
            return describe(scene)
        if "editing command" in request.prompt:
            return "add a large red circle in the center"
        if self.sighted:
            for obj in scene.objects:
                if obj.color in ("red", "green") and obj.shape not in ("clock", "sign"):
                    return f"what color is the object in the {obj.position}?"
        return "what color is the object in the top left?"

    def generate(self, requests):
        return [self.write(request) for request in requests]


@pytest.fixture(scope="module", autouse=True)
def scripted():
    register_backend("scripted", ScriptedAuditor)
    register_model(ModelSpec("sighted-auditor", path="sighted", backend="scripted", kwargs={"sighted": True}))
    register_model(ModelSpec("blind-auditor", path="blind", backend="scripted", kwargs={"sighted": False}))
    register_model(ModelSpec("silent-auditor", path="silent", backend="scripted", kwargs={"silent": True}))


def red_object_question(scene):
    obj = next(o for o in scene.objects if o.color == "red" and o.shape not in ("clock", "sign"))
    return f"what color is the object in the {obj.position}?"


def auditor_settings(**overrides):
    plan = build_plan(AuditConfig(target="world-target-redgreen", auditor="sighted-auditor", **{**WORLD, **overrides}))
    return {stage.settings for stage in plan.stages if isinstance(stage, AuditorSpec)}


def test_auditor_decoding_greedy_by_default_and_sampled_as_asked():
    assert auditor_settings() == {GenerationSettings(max_new_tokens=96)}, "one probe per image: greedy"
    assert auditor_settings(auditor_sampling=True) == {GenerationSettings(max_new_tokens=96, temperature=1.0, top_p=0.95)}
    assert auditor_settings(probes_per_image=2) == auditor_settings(auditor_sampling=True), "several probes sample"
    assert auditor_settings(auditor_temperature=0.5) == {GenerationSettings(max_new_tokens=96, temperature=0.5, top_p=0.95)}, (
        "a temperature alone turns sampling on: it is never silently ignored"
    )
    assert auditor_settings(auditor_top_p=0.8, probes_per_image=3) == {GenerationSettings(max_new_tokens=96, temperature=1.0, top_p=0.8)}
    plain = AuditConfig(target="world-target-redgreen", auditor="sighted-auditor", **WORLD)
    assert "auditor_temperature" not in plain.identity(), "runs made before the flag existed still resume"
    assert AuditConfig(**{**WORLD, "auditor_temperature": 0.5}).identity()["auditor_temperature"] == 0.5, "another temperature is another run"


def test_reward_terms_score_the_audits_verdict_and_count_failures(auditdm_home):
    plan = build_plan(AuditConfig(target="world-target-redgreen", auditor="sighted-auditor", modes=["question", "regenerate"], **WORLD))
    terms = RewardTerms(AuditReward(plan, "question"))
    functions = {f.__name__: f for f in terms.terms(["disagreement", "answerability", "format", "novelty"])}
    scene = next(sample_scene(9, i) for i in range(100) if any(o.color == "red" and o.shape not in ("clock", "sign") for o in sample_scene(9, i).objects))
    image = draw(scene)
    completions = [red_object_question(scene), "how many objects are there?", "colour banana", red_object_question(scene), "banana split"]
    modes = ["question"] * 4 + ["regenerate"]
    columns = {"image": [image] * 5, "mode": modes}
    scores = {name: function(prompts=["p"] * 5, completions=completions, **columns) for name, function in functions.items()}
    assert scores["disagreement"] == [1.0, 0.0, 0.0, 1.0, 0.0], "red seen as green by the target: a discovered failure"
    assert scores["answerability"][:3] == [1.0, 1.0, 0.0], "the oracle cannot answer a question that is no question"
    assert scores["format"] == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert scores["novelty"] == [1.0, 1.0, 0.0, 1.0, 1.0], "a text written twice for the same image costs nothing; no novelty for what is no question"
    logs = terms.take_counts()
    assert logs["audit/failed/render:regenerate"] == 1.0, "the caption names no object the world can draw: counted, not a silent zero"
    assert logs["audit/answerable_share"] == pytest.approx(3 / 5)
    assert terms.take_counts()["audit/failed/total"] == 0.0, "counts are per log interval"
    other = draw(sample_scene(9, 99))
    blind = functions["novelty"](prompts=["p"] * 2, completions=["how many objects are there?"] * 2, image=[image, other])
    assert blind == [0.5, 0.5], "the same text for two different images earns half: looking pays"
    reordered = functions["novelty"](prompts=["p"] * 2, completions=["how many objects are there?", "how many are there objects?"], image=[image, other])
    assert reordered == [0.5, 0.5], "reordering a probe does not make it a new one"
    tails = ["how many objects are there there?", "how many objects are there? is there a red circle?", "how many objects are there? open"]
    assert functions["format"](prompts=["p"] * 3, completions=tails, image=[image, other, image]) == [0.0] * 3
    assert functions["novelty"](prompts=["p"] * 3, completions=tails, image=[image, other, image]) == [0.0] * 3, "words tacked on buy no novelty"
    # a reasoning auditor's thinking is not its probe: the audit, format and novelty read what follows it
    thought = [f"<think> there is a red object\nso ask its colour </think> {red_object_question(scene)}", "<think> maybe the red object in the"]
    reasoned = {name: function(prompts=["p"] * 2, completions=thought, image=[image, other]) for name, function in functions.items()}
    assert reasoned["disagreement"] == [1.0, 0.0], "the question after the block is audited; an unclosed block is no probe"
    assert reasoned["format"] == [1.0, 0.0] and reasoned["novelty"] == [1.0, 0.0]
    assert terms.take_counts()["audit/failed/total"] == 1.0, "the auditor that ran out of tokens while thinking is counted"


def test_novelty_window_remembers_earlier_batches(auditdm_home):
    plan = build_plan(AuditConfig(target="world-target-redgreen", auditor="sighted-auditor", **WORLD))
    images = [draw(sample_scene(9, i)) for i in range(4)]
    asked = "how many objects are there?"

    def novelty(window, batches):
        function = RewardTerms(AuditReward(plan, "question"), novelty_window=window).term("novelty")
        return [function(prompts=["p"] * len(texts), completions=texts, image=shown) for texts, shown in batches]

    batches = [([asked, asked], [images[0], images[0]]), ([asked, "is there a red circle?"], [images[1], images[2]]),
               (["colour banana", asked], [images[3], images[3]])]
    assert novelty(0, batches) == [[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]], "without a window each batch counts alone"
    assert novelty(8, batches) == [[1.0, 1.0], [0.5, 1.0], [0.0, 1 / 3]], (
        "the text written for an image of an earlier batch counts as written for that image too"
    )
    assert novelty(2, batches)[2] == [0.0, 0.5], "the window holds the last 2 well-formed probes: the image-0 ones are gone"
    with pytest.raises(ConfigError, match="--novelty_window must be 0"):
        AuditorTrainingArguments(novelty_window=-1)


def test_compare_auditors_measures_success_precision_and_ceilings(auditdm_home, tmp_path):
    base = AuditConfig(target="world-target-redgreen", auditor="sighted-auditor", modes=["question"], **WORLD)
    comparison = compare_auditors(["sighted-auditor", "blind-auditor"], base, tmp_path / "cmp")
    sighted, blind = comparison.reports
    assert sighted.overall.probes_written == blind.overall.probes_written == 30
    assert sighted.overall.precision == 1.0, "exact oracle references: every flagged failure is genuine"
    assert sighted.overall.success_rate > blind.overall.success_rate, "seeing the red and green objects finds more"
    ceilings = comparison.ceilings
    assert ceilings.blind <= ceilings.scene_aware and ceilings.scene_aware > 0.5
    assert sighted.overall.success_rate <= ceilings.scene_aware + 1e-9, "no auditor beats the scene-aware ceiling"
    assert blind.overall.success_rate <= ceilings.blind + 1e-9, "a blind auditor cannot beat the best blind question"
    assert blind.overall.distinct_per_100 == pytest.approx(100 / 30), "one question for every image: mode collapse shows"
    assert blind.overall.distinct_in_100 == pytest.approx(100 / 30), "under 100 probes: the share, scaled"
    assert sighted.overall.distinct_in_100 == pytest.approx(sighted.overall.distinct_per_100)
    assert "color recognition" in sighted.per_type
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert [a["label"] for a in saved["auditors"]] == ["sighted-auditor", "blind-auditor"]
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 1000
    again = compare_auditors([str(tmp_path / "cmp" / "audits" / "sighted-auditor")], base, tmp_path / "cmp2")
    assert again.reports[0].overall == sighted.overall, "an audit on disk is scored as it stands"


def test_an_auditor_that_writes_nothing_scores_zero_beside_the_others(auditdm_home, tmp_path):
    base = AuditConfig(target="world-target-redgreen", auditor="sighted-auditor", modes=["question"], **WORLD)
    comparison = compare_auditors(["silent-auditor", "sighted-auditor"], base, tmp_path / "cmp")
    silent, sighted = comparison.reports
    assert silent.overall.probes_written == 30 and silent.overall.failures == 0 and silent.overall.success_rate == 0.0
    assert silent.overall.distinct_per_100 == 0.0, "30 empty texts are no variety"
    assert sighted.overall.success_rate > 0
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["auditors"][0]["overall"]["probes_written"] == 30


def test_the_training_benchmark_pools_runs_with_a_per_scene_interval(auditdm_home, tmp_path, monkeypatch):
    """``benchmarks/auditor_training.py`` pools sampled runs: the same audit twice is one run's evidence, and
    an auditor that wrote nothing adds its probes as failed ones, each its own scene."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import auditor_training

    base = AuditConfig(target="world-target-redgreen", auditor="sighted-auditor", modes=["question"], **WORLD)
    comparison = json.loads(json.dumps(compare_auditors(["sighted-auditor", "silent-auditor"], base, tmp_path / "cmp").to_json(), default=float))
    sighted, silent = comparison["auditors"]
    once = sighted["overall"]
    summaries = [auditor_training.summary(sighted, sighted, comparison["ceilings"])] * 2
    twice = auditor_training.pooled(summaries, [sighted, sighted])
    assert twice["success_rate"] == once["success_rate"] and twice["distinct_in_100"] == once["distinct_in_100"]
    assert twice["success_interval"] == pytest.approx(once["success_interval"], abs=0.02), "the same probes twice: no narrower"
    naive = wilson(2 * once["failures"], 2 * once["probes_written"])
    assert twice["success_interval"][1] - twice["success_interval"][0] > 1.3 * (naive[1] - naive[0])
    outcomes = auditor_training.scene_outcomes([sighted, silent])
    assert sum(probes for _, probes in outcomes) == 60 and sum(found for found, _ in outcomes) == once["failures"]
    assert sorted(outcomes).count((0, 1)) >= 30, "the silent auditor's 30 unmade probes, each alone"


def test_a_target_without_weakness_has_no_genuine_failures(auditdm_home, tmp_path):
    base = AuditConfig(target="world-target-none", auditor="sighted-auditor", modes=["question"], **{**WORLD, "references": ["world-oracle-noisy-a", "world-oracle-noisy-b", "world-oracle-noisy-c"]}, agreement_rule="majority")
    comparison = compare_auditors(["sighted-auditor"], base, tmp_path / "cmp")
    report = comparison.reports[0].overall
    assert report.genuine_failures == 0 and comparison.ceilings.scene_aware == 0.0


def test_auditor_specs_and_intervals():
    assert auditor_under_test("world-auditor@baseline").prompt_variant == "baseline"
    assert auditor_under_test("org/model").auditor == "org/model" and auditor_under_test("org/model").prompt_variant == "auditdm"
    low, high = wilson(5, 100)
    assert 0.02 < low < 0.05 < high < 0.12
    assert _axis_label("/home/me/outputs/auditor-training-benchmark/mirror/auditor") == "mirror/auditor", "a path: its last two folders"
    assert _axis_label("world-auditor@baseline").split("\n") == ["world-auditor", "@baseline"]


def test_distinct_in_100_does_not_fall_as_the_pool_grows():
    even = [10] * 30  # 30 texts written 10 times each
    assert rarefied_distinct(even, 300) == pytest.approx(30 * (1 - math.comb(290, 100) / math.comb(300, 100)))
    assert rarefied_distinct([20] * 30, 600) == pytest.approx(rarefied_distinct(even, 300), abs=0.5), (
        "the same auditor over twice the pool: the same figure (the share per 100 written halves)"
    )
    assert rarefied_distinct([298, 1, 1], 300) < 2 < rarefied_distinct([100, 100, 100], 300) == pytest.approx(3.0), (
        "one dominant text: the rare ones seldom turn up in 100"
    )
    assert rarefied_distinct([10] * 20, 300) < rarefied_distinct(even, 300), "a third of the probes never made: less variety"
    assert rarefied_distinct([], 40) == 0.0 and rarefied_distinct([1] * 5, 50) == 10.0 and math.isnan(rarefied_distinct([], 0))


def test_clustered_interval_counts_a_scenes_repeated_probes_once():
    independent = wilson(80, 100)
    alike = clustered_wilson([(3, 3)] * 80 + [(0, 3)] * 20)  # three seeds, every scene's three probes agree
    assert alike == pytest.approx(independent, abs=2e-3), "three identical probes of a scene are one scene's evidence"
    mixed = clustered_wilson([(2, 3)] * 100)  # no scene differs from another: the probes are as good as independent
    assert mixed == pytest.approx(wilson(200, 300), abs=1e-9)
    assert clustered_wilson([(1, 1)] * 80 + [(0, 1)] * 20) == independent, "one probe per scene: Wilson's own interval"
    assert all(math.isnan(bound) for bound in clustered_wilson([]))


def test_checkpoint_audits_combine_into_one_deduplicated_dataset(auditdm_home, tmp_path):
    from auditdm_eval.combine import combine_audits
    from auditdm_eval.runner import run_audit
    from auditdm_eval.store import load_audit

    base = AuditConfig(target="world-target-redgreen", auditor="sighted-auditor", modes=["question"], **WORLD)
    first = run_audit(base.with_overrides(out=str(tmp_path / "a"), images="world:12:5"))  # same scenes, same questions
    second = run_audit(base.with_overrides(out=str(tmp_path / "b"), images="world:20:5"))  # 12 of them again, 8 new
    blind = run_audit(base.with_overrides(out=str(tmp_path / "c"), auditor="blind-auditor", images="world:12:5"))
    combined = combine_audits([first.out, second.out, blind.out], tmp_path / "all")
    rows = list(load_audit(combined.out).remove_columns(["source_image"]))
    keys = {(row["image_sha256"], row["question"]) for row in rows}
    assert len(keys) == len(rows) == combined.probes
    assert combined.per_source[str(second.out)] == 8, "the second audit adds only its new scenes"
    assert combined.duplicates == 12 + (12 - combined.per_source[str(blind.out)])
    with pytest.raises(ValueError, match="judged its probes differently"):
        combine_audits([first.out, run_audit(base.with_overrides(out=str(tmp_path / "d"), target="world-target-mirror", images="world:2:5")).out], tmp_path / "x")


def test_records_convert_both_ways(auditdm_home, tmp_path):
    """A stored row read back as an AuditRecord writes the same row again (images by their pixels)."""
    from auditdm_eval.records import AuditRecord
    from auditdm_eval.runner import run_audit
    from auditdm_eval.store import load_audit

    result = run_audit(AuditConfig(
        target="world-target-redgreen", auditor="sighted-auditor", modes=["question", "regenerate", "edit"], annotator="world",
        out=str(tmp_path / "a"), **{**WORLD, "images": "world:4:5"},
    ))
    for row in load_audit(result.out):
        again = AuditRecord.from_row(row).to_row()
        assert {k: v for k, v in again.items() if k not in ("image", "source_image")} == {
            k: v for k, v in row.items() if k not in ("image", "source_image")
        }
        assert AuditRecord.from_row(row).probe.image_sha == row["image_sha256"]


def test_every_auditor_recipe_loads_through_the_training_parser():
    """The supplement's A.2 settings survive the parser: 1,000 steps, lr 3e-6 (LoRA 3e-5), 10% warm-up,
    cosine to a floor, a global batch of 256 over 8 GPUs or 16 accumulation steps, a checkpoint every 250."""
    from pathlib import Path

    from auditdm_eval.training.grpo import parse

    configs = Path(__file__).resolve().parents[1] / "recipes" / "configs"
    names = sorted(p.name for p in configs.glob("auditor_*.yaml"))
    assert names == ["auditor_gemma3_4b.yaml", "auditor_gemma3_4b_lora.yaml", "auditor_world.yaml"]
    for name in names[:2]:
        run = parse(["--config", str(configs / name), "--images", "world:8:1"])
        g = run.grpo
        assert g.max_steps == 1000 and g.save_steps == 250 and g.warmup_steps == 0.1
        assert g.lr_scheduler_type.value == "cosine_with_min_lr" and g.num_generations == 8
        assert run.training.reward_terms == ["disagreement", "answerability", "format", "novelty"]
        assert run.config.modes == ["question", "regenerate", "edit"]
    full, lora = (parse(["--config", str(configs / n), "--images", "world:8:1"]) for n in names[:2])
    assert full.grpo.learning_rate == 3e-6 and full.grpo.per_device_train_batch_size * 8 == 256
    assert lora.model.use_peft and lora.grpo.per_device_train_batch_size * lora.grpo.gradient_accumulation_steps == 256
    world = parse(["--config", str(configs / "auditor_world.yaml"), "--max_steps", "7"])
    assert world.grpo.max_steps == 7 and world.config.images.startswith("world:")


def test_the_report_names_a_planted_weakness_by_the_records_own_types(auditdm_home, tmp_path):
    """World records carry the failure type their ground truth knows; the report's table of what the
    target said instead shows the swap itself."""
    from auditdm_eval.report import make_report
    from auditdm_eval.runner import run_audit
    from auditdm_eval.store import load_audit

    result = run_audit(AuditConfig(
        target="world-target-redgreen", auditor="sighted-auditor", modes=["question"], annotator="world",
        out=str(tmp_path / "a"), **WORLD,
    ))
    rows = list(load_audit(result.out).remove_columns(["image", "source_image"]))
    assert all(row["failure_type"] == json.loads(row["extra"])["truth"]["failure_type"] for row in rows)
    report = make_report(result.out, tmp_path / "report")
    assert report.rates.index[0] == "color recognition", report.rates
    top = report.confusions.iloc[0]
    assert {top["expected"], top["target said"]} == {"red", "green"}, report.confusions
    assert "| red | green |" in report.markdown.read_text() or "| green | red |" in report.markdown.read_text()


def test_the_default_warm_start_installs_from_the_package_and_another_builds_once(monkeypatch, tmp_path):
    from auditdm_eval.training import warm_start
    from model_adapters import resolve

    built = []

    def record(out_dir, settings, progress=True, base=None):
        built.append(settings)
        (out_dir / "config.json").write_text("{}")
        return out_dir

    monkeypatch.setenv("AUDITDM_HOME", str(tmp_path))
    monkeypatch.setattr(warm_start, "build_in_child", record)
    small, large = (Path(resolve(name)[0]) for name in ("world-auditor", "world-auditor-large"))
    assert [s.hidden_size for s in built] == [128], "the large one is built; the default one is not"
    shipped = warm_start.shipped_copy(warm_start.WARM_STARTS["world-auditor"][0])
    assert small.parent == large.parent == tmp_path / "tiny" and small != large
    for file in shipped.iterdir():
        assert (small / file.name).read_bytes() == file.read_bytes(), f"{file.name} installed as shipped"
    assert large.name == f"world-auditor-{warm_start.WARM_STARTS['world-auditor-large'][0].key()}"
    assert resolve("world-auditor-large")[0] == str(large) and len(built) == 1, "built once, then found in $AUDITDM_HOME"


def test_the_shipped_warm_start_is_the_default_one_for_the_current_world():
    """Editing the world's code or the default settings changes the warm start's key: the package
    must then ship a build for the new key, or every fresh machine spends a quarter of an hour building."""
    from auditdm_eval.training import warm_start

    folders, validation = [], {}
    for name in warm_start.WARM_STARTS:
        if name == "world-auditor-large":  # built on first use
            continue
        settings = warm_start.WARM_STARTS[name][0]
        shipped = warm_start.shipped_copy(settings)
        fix = f"run `python -m auditdm_eval.training.warm_start ship {name}` and commit auditdm_eval/training/shipped"
        assert shipped is not None, f"no shipped warm start for {name}'s key {settings.key()}: {fix}"
        record = json.loads((shipped / "warm_start.json").read_text())
        assert warm_start.settings_from_record(record["settings"]) == settings
        assert record["validation"]["objects_described_right"] > 0.7 and record["validation"]["captions_rendered"] > 0.8
        folders.append(shipped.name)
        validation[name] = record["validation"]
    assert validation["world-auditor-sighted"]["cells_looked_up_right"] > 0.8, "the sighted one sees"
    def grounding(name: str) -> float:  # how much likelier a question is to be valid on its own scene than on another
        return validation[name]["questions_valid_on_their_scene"] - validation[name]["questions_valid_on_another_scene"]

    assert grounding("world-auditor-grounded") > 0.2, "the grounded one's questions name what is in their own scene"
    assert grounding("world-auditor-grounded") > max(grounding("world-auditor"), grounding("world-auditor-sighted")) + 0.1
    assert grounding("world-auditor-looking") > grounding("world-auditor-grounded") + 0.1, "looking first grounds the question further"
    assert sorted(p.name for p in warm_start.SHIPPED.iterdir()) == sorted(folders), "stale shipped copies: ship them again"


def test_a_continued_warm_start_trains_on_from_its_base_and_its_key_follows_the_base(monkeypatch, tmp_path):
    """``start_from`` continues the registered warm start it names (installed, or built, first) instead
    of a random initialisation; a changed base is another warm start."""
    from dataclasses import replace

    import torch
    from safetensors.torch import load_file

    from auditdm_eval.training import warm_start

    settings = warm_start.WarmStartSettings(start_from="world-auditor", vision_steps=0, writing_steps=3, batch_size=4, learning_rate=1e-3)
    out = warm_start.ensure_world_auditor(tmp_path, settings, progress=False)
    base = tmp_path / warm_start.folder_name(warm_start.WARM_STARTS["world-auditor"][0])
    record = json.loads((out / "warm_start.json").read_text())
    assert record["started_from"] == base.name and out.parent == base.parent, "the base installed beside it, and named"
    trained, before = load_file(out / "model.safetensors"), load_file(base / "model.safetensors")
    assert trained.keys() == before.keys()
    assert any(not torch.equal(trained[k], before[k]) for k in trained), "it trained"
    assert record["validation"]["objects_described_right"] > 0.5, "three steps on keep what the base learnt to see"

    assert settings.key() != replace(settings, start_from=None).key()
    default = warm_start.WARM_STARTS["world-auditor"]
    monkeypatch.setitem(warm_start.WARM_STARTS, "world-auditor", (replace(default[0], seed=9), default[1]))
    assert out.name != warm_start.folder_name(settings), "the base's settings are part of the key"
    with pytest.raises(KeyError, match="no registered warm start"):
        replace(settings, start_from="world-auditor-nope").key()


def test_a_warm_start_builds_in_a_child_with_its_settings_and_pinned_kernels(monkeypatch, tmp_path):
    import subprocess
    from dataclasses import asdict

    from auditdm_eval import kernels
    from auditdm_eval.training import warm_start

    settings = warm_start.WARM_STARTS["world-auditor-large"][0]
    again = warm_start.settings_from_json(json.dumps(asdict(settings)))
    assert again == settings and again.key() == settings.key(), "the child builds what the parent's cache key names"
    launched = []
    monkeypatch.setattr(kernels.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(subprocess, "run", lambda command, env, check: launched.append((command, env)) or subprocess.CompletedProcess(command, 3))
    with pytest.raises(RuntimeError, match="exit 3"):
        warm_start.build_in_child(tmp_path / "out", settings, progress=False)
    (command, env), = launched
    assert f"from {warm_start.__name__} import build_from_argv" in command[2], "importable also under python -m"
    assert command[3] == str(tmp_path / "out") and command[5] == "quiet"
    assert warm_start.settings_from_json(command[4]) == settings
    assert {name: env[name] for name in kernels.PORTABLE_KERNELS} == kernels.PORTABLE_KERNELS


def test_the_build_command_stages_its_folder_and_never_writes_over_another(monkeypatch, tmp_path, capsys):
    """``python -m ...warm_start build NAME DIR``: DIR appears only complete, a failed build leaves
    nothing behind, a finished build is not repeated, and a folder holding something else is refused."""
    from dataclasses import asdict

    from auditdm_eval.training import warm_start
    from model_adapters import registry

    monkeypatch.setattr(registry, "tiny_root", lambda: tmp_path / "home")
    settings = warm_start.WARM_STARTS["world-auditor"][0]
    built = []

    def fake_build(out_dir, given, progress, base=None):
        built.append(out_dir)
        assert out_dir.parent == tmp_path and out_dir.name.startswith(".out-"), "built in a staging folder beside DIR"
        out_dir.mkdir(exist_ok=True)
        (out_dir / "model.safetensors").write_text("weights")
        if len(built) == 1:
            raise RuntimeError("building the world auditor failed (exit 1)")
        (out_dir / "warm_start.json").write_text(json.dumps({"settings": asdict(given)}))

    monkeypatch.setattr(warm_start, "build_in_child", fake_build)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="exit 1"):
        warm_start.main(["build", "world-auditor", str(out)])
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a failed build leaves neither DIR nor its staging folder"

    warm_start.main(["build", "world-auditor", str(out)])
    assert (out / "model.safetensors").exists() and len(built) == 2
    warm_start.main(["build", "world-auditor", str(out)])
    assert len(built) == 2, "a finished build of the same settings is not repeated"
    assert capsys.readouterr().out.split() == [str(out), str(out)]

    with pytest.raises(SystemExit) as stopped:
        warm_start.main(["build", "world-auditor-large", str(out)])
    assert stopped.value.code == 2 and "pass a new folder" in capsys.readouterr().err
    assert (out / "model.safetensors").read_text() == "weights" and len(built) == 2, "another warm start's folder is left as it was"
    assert warm_start.settings_from_record(json.loads((out / "warm_start.json").read_text())["settings"]) == settings


def test_object_questions_name_an_object_of_their_own_scene():
    """The warm start's grounded question task: every question is valid in its scene and names one of its
    objects, so, unlike counts and existence filters, it is rarely valid in another scene."""
    import random

    from auditdm_eval.training import warm_start
    from auditdm_eval.world import answer, parse_question, sample_scene
    from auditdm_eval.world.language import resolve

    rng = random.Random(0)
    scenes = [sample_scene(5, i) for i in range(120)]
    own = other = 0
    for i, scene in enumerate(scenes):
        query = parse_question(warm_start.object_question(scene, rng))
        assert query is not None and query.qtype not in ("count", "existence")
        assert resolve(query.ref, scene) in scene.objects
        own += answer(query, scene) is not None
        other += answer(query, scenes[i - 1]) is not None
    assert own == len(scenes) and other < len(scenes) / 2
    typed = [parse_question(warm_start.typed_question(s, rng)) for s in scenes]
    assert sum(answer(q, scenes[i - 1]) is not None for i, q in enumerate(typed)) > other, "typed questions travel further"
    from auditdm_eval.prompts import PROMPT_VARIANTS

    instruction, question = warm_start.writing_example(scenes[0], rng, "object_question")
    assert instruction in {PROMPT_VARIANTS.build(v).question for v in PROMPT_VARIANTS.names()}, "taught as the auditor's question prompt"
    assert parse_question(question) is not None


@pytest.mark.parametrize("task", ["looked_question", "twin_looked_question", "placed_looked_question"])
def test_a_looked_question_first_says_what_its_cell_holds_and_the_audit_runs_only_the_question(task):
    """The look-then-ask tasks: the reasoning block names a cell (the twin and placed tasks: every cell holding
    the same thing) and what the image shows there, the question after it names that very object, and the
    auditor's cleaning leaves the question alone. The placed task also asks whether the thing, named in
    full, is in its cell: a question with one answer even about a thing the scene holds twice."""
    import random

    from auditdm_eval.stages.auditor import clean_auditor_text
    from auditdm_eval.training import warm_start
    from auditdm_eval.world import answer, parse_question, sample_scene
    from auditdm_eval.world.language import resolve

    rng, twins, placed, placed_twins = random.Random(1), 0, 0, 0
    for i in range(120):
        scene = sample_scene(5, i)
        text = warm_start.QUESTION_TASKS[task](scene, rng)
        looked, question = text.split("</think>")
        positions, thing = looked.removeprefix("<think>").strip().split(": ")
        cells = positions.split(", ")
        query = parse_question(clean_auditor_text(text))
        assert query is not None and clean_auditor_text(text) == question.strip()
        assert answer(query, scene) is not None
        named = resolve(query.ref, scene)
        assert named.position in cells and all(warm_start.lookup_answer(scene, cell) == thing for cell in cells)
        holding = [cell for cell in warm_start.GRID if warm_start.lookup_answer(scene, cell) == thing]
        assert cells == ([named.position] if task == "looked_question" else holding)
        twins += len(holding) > 1
        if query.qtype == "existence":
            assert task == "placed_looked_question" and answer(query, scene) == "yes"
            assert query.ref.cell == named.cell and query.ref.words() == f"{named.size} {named.color} {named.shape} in the {named.position}"
            placed += 1
            placed_twins += len(holding) > 1
    assert twins > 5, "the pool has things that are not alone"
    if task == "placed_looked_question":
        assert 10 < placed < 60 and placed_twins, "one question type of several, asked about things held twice too"


def test_a_short_build_trains_validates_and_records_what_it_was_built_with(tmp_path):
    """The build users get when nothing shipped fits, for a few steps: a child process trains, saves,
    validates and records its settings and kernels; the result loads and generates like any checkpoint."""
    import platform

    from auditdm_eval.training import warm_start
    from auditdm_eval.world import draw, sample_scene
    from model_adapters import GenerationRequest, GenerationSettings, TransformersVLM

    settings = warm_start.WarmStartSettings(vision_steps=2, writing_steps=2, batch_size=4)
    warm_start.build_in_child(tmp_path / "ws", settings, progress=False)
    record = json.loads((tmp_path / "ws" / "warm_start.json").read_text())
    assert warm_start.settings_from_record(record["settings"]) == settings
    assert record["validation"]["final_loss"] > 0 and 0 <= record["validation"]["objects_described_right"] <= 1
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert record["built_with"]["cpu_capability"] == "AVX2", record["built_with"]
    model = TransformersVLM(str(tmp_path / "ws"))
    request = GenerationRequest((draw(sample_scene(5, 0)),), warm_start.DESCRIBE, "instruct", GenerationSettings(max_new_tokens=4))
    assert isinstance(model.generate([request])[0], str)


def test_the_world_recipe_gives_its_auditor_room_to_look_and_then_ask(auditdm_home):
    """``auditor_world.yaml`` trains a looking warm start, whose questions follow a reasoning block:
    at the recipe's completion length its greedy texts end in a question the world understands; cut to the
    24 tokens a plain question needs, the block leaves room for a question's first word and no more."""
    import yaml

    import auditdm_eval  # noqa: F401  (registers the world's model names)
    from auditdm_eval.prompts import PROMPT_VARIANTS
    from auditdm_eval.stages.auditor import clean_auditor_text
    from auditdm_eval.world import parse_question
    from model_adapters import GenerationRequest, TransformersVLM, resolve

    recipe = yaml.safe_load((Path(__file__).resolve().parents[1] / "recipes" / "configs" / "auditor_world.yaml").read_text())
    assert recipe["auditor"] == "world-auditor-looking-placed"
    model = TransformersVLM(resolve(recipe["auditor"])[0], batch_size=16)
    images = [draw(sample_scene(7, i)) for i in range(16)]

    def questions(tokens: int) -> list[str]:
        settings = GenerationSettings(max_new_tokens=tokens)
        requests = [GenerationRequest((image,), PROMPT_VARIANTS.build("auditdm").question, "instruct", settings) for image in images]
        return [clean_auditor_text(text) for text in model.generate(requests)]

    understood = sum(parse_question(q) is not None for q in questions(recipe["max_completion_length"]))
    assert understood >= 12, understood
    assert not any(parse_question(q) for q in questions(24))
