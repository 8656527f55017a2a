"""The Ray engine: the same records as the local engine, and a killed run that resumes whole.

Ray starts in seconds, but every actor is a process that imports torch: the Ray runs here are
few, on one local Ray instance of 2 CPUs shared by the module (the killed run starts its own,
as a user's would)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from auditdm_eval.config import AuditConfig
from auditdm_eval.engines import EngineConfig, stage_overrides
from auditdm_eval.errors import ConfigError
from auditdm_eval.runner import build_plan, run_audit
from auditdm_eval.store import load_audit

from conftest import photo
from test_engines import FINGERPRINT, fingerprint_configs, fingerprint_rows

AUDITDM = str(Path(sys.executable).with_name("auditdm"))


# -- without Ray running: pool sizing, the missing extra, the shared cache ------------------------
def test_pools_are_sized_per_stage(tiny_paths, tmp_path):
    from auditdm_eval.engines.ray_engine import Pool, check_fits, pool_sizes

    config = fingerprint_configs(tmp_path)["tiny_preset"].with_overrides(annotator="world")
    plan = build_plan(config)
    engine = EngineConfig(
        engine="ray", ray_actors=2, ray_gpus_per_actor=0.5, ray_cpus_per_actor=1,
        ray_stage_resources=["answer:target=3:1", "answer=1", "render:edit=1:0:2"],
    )
    pools = pool_sizes(plan.stages, engine)
    assert pools["auditor:question"] == Pool(2, 0.5, 1)
    assert pools["answer:target:tiny-paligemma2"] == Pool(3, 1, 1), "the longest matching prefix wins"
    assert pools["answer:reference:tiny-gemma3-seed1"] == Pool(1, 0.5, 1)
    assert pools["render:regenerate"] == Pool(2, 0.5, 1) and pools["render:edit"] == Pool(1, 0, 2)
    assert pools["judge"] == Pool(1, 0, 1) and pools["annotate:world"] == Pool(1, 0, 1), "no model: one actor, no GPU"
    with pytest.raises(ConfigError, match="names no stage"):
        pool_sizes(plan.stages, EngineConfig(engine="ray", ray_stage_resources=["answer:tagret=2"]))
    with pytest.raises(ConfigError, match="--ray-stage-resources"):
        stage_overrides(["answer:target"])
    with pytest.raises(ConfigError, match="at least one actor"):
        EngineConfig(engine="ray", ray_stage_resources=["judge=0"])
    with pytest.raises(ConfigError, match=r"reserve .*GPUs.*--ray-gpus-per-actor"):
        check_fits(pools, {"CPU": 64.0}, strict=True)
    check_fits(pools, {"CPU": 64.0, "GPU": 8.0}, strict=True)


def test_missing_ray_names_the_extra(monkeypatch):
    from auditdm_eval.engines import ENGINES, EngineOptions

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'auditdm-eval\[ray\]'"):
        ENGINES.build("ray", options=EngineOptions())


def _write_answers(path: str, worker: int, queue) -> None:
    from auditdm_eval.cache import AnswerCache

    cache = AnswerCache(path)
    try:
        for start in range(0, 300, 3):
            cache.put_many((f"k{key}", f"m{worker}", f"text {key}") for key in range(start, start + 3))
            cache.get_many([f"k{key}" for key in range(start, start + 3)])
        queue.put(None)
    except Exception as error:  # noqa: BLE001 - reported to the test
        queue.put(repr(error))
    finally:
        cache.close()


def test_answer_cache_is_shared_by_processes(tmp_path):
    """The Ray engine's actors open one SQLite answer cache together: no process fails on a lock."""
    from auditdm_eval.cache import AnswerCache

    path = str(tmp_path / "answers.sqlite")
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_write_answers, args=(path, worker, queue)) for worker in range(4)]
    for worker in workers:
        worker.start()
    errors = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert errors == [None] * 4
    assert len(AnswerCache(path)) == 300



def test_stage_actor_maps_batches_and_hands_a_stage_error_to_the_driver(tiny_paths, tmp_path):
    """The callable class Ray runs, without Ray: numpy batches of pickled items in and out, the same
    items the stage makes in-process; a stage that cannot be built travels as its own exception."""
    import numpy as np
    from model_adapters import ModelLoadError

    from auditdm_eval.engines.ray_engine import ITEM, StageActor, batch_error, batch_stats, dump, load
    from auditdm_eval.resources import ModelRef, Resources
    from auditdm_eval.sources import iter_sources
    from auditdm_eval.stages.answer import AnswerSpec
    from auditdm_eval.stages.judge import JudgeSpec

    config = AuditConfig(
        target="tiny-paligemma2", references=["tiny-gemma3-seed1"], auditor="tiny-gemma3", images="skimage:astronaut,coffee",
        out=str(tmp_path / "out"), modes=["question"], cache_dir=str(tmp_path / "cache"), progress=False,
    )
    plan = build_plan(config)
    items, _ = plan.work_items(list(iter_sources(config.images)))
    items = [item.but(question="what is it?") for item in items]
    answer = AnswerSpec(ModelRef("tiny-paligemma2"), "target", cache=str(tmp_path / "cache" / "answers.sqlite"))
    batch = StageActor(answer)({ITEM: np.array([dump(item) for item in items], dtype=object)})
    assert batch_error(batch) is None and batch_stats(batch)["cache_misses"] == len(items)
    expected = answer.build(Resources())(items)
    assert [load(data).target for data in batch[ITEM]] == [item.target for item in expected]

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "nonsense"}')
    failed = StageActor(AnswerSpec(ModelRef(str(broken)), "target"))({ITEM: np.array([dump(item) for item in items], dtype=object)})
    passed_on = StageActor(JudgeSpec())(failed)
    error = batch_error(passed_on)
    assert isinstance(error, ModelLoadError) and str(broken) in str(error), error
    assert [load(data).probe_id for data in passed_on[ITEM]] == [item.probe_id for item in items]


# -- on a local Ray instance ------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_ray(tiny_paths):
    """A local Ray instance with 2 CPUs for the module; the engine joins it (and leaves it running)."""
    import ray  # the test extra installs it: not skipped when missing

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


RENDERED = ("regenerated", "edited")
GREY_LEVELS = 2  # how far a rendered pixel may move when the float sums behind it run in another order


def rendered_pixels(out: Path) -> dict[str, np.ndarray]:
    return {row["probe_id"]: np.asarray(row["image"], dtype=int) for row in load_audit(out) if row["provenance"] in RENDERED}


def without_rendered_hashes(rows: list[dict]) -> list[dict]:
    return [{**row, "image_sha256": None} if row["provenance"] in RENDERED else row for row in rows]


def test_ray_engine_writes_what_the_local_engine_writes(local_ray, tmp_path):
    """All three modes (auditor, both renderers, target, reference, judge as actor pools): the probe ids,
    texts, answers and verdicts the local engine writes (its fingerprint, test_engines), and its
    pixels. A diffusion pipeline's pixels follow how its float sums are split over batch rows and
    threads, and Ray's actors batch other rows together than the local engine does, so the rendered
    images are compared with the local engine's own as pixels, within GREY_LEVELS."""
    config = fingerprint_configs(tmp_path)["tiny_preset"]
    result = run_audit(config, "ray", {"ray_batch_size": 4})
    expected = json.loads(FINGERPRINT.read_text())["tiny_preset"]
    assert without_rendered_hashes(fingerprint_rows(Path(config.out))) == without_rendered_hashes(expected)
    local = config.with_overrides(out=str(tmp_path / "local"), cache_dir=str(tmp_path / "local-cache"))
    run_audit(local)
    by_ray, by_local = rendered_pixels(Path(config.out)), rendered_pixels(Path(local.out))
    assert by_ray.keys() == by_local.keys() and len(by_ray) == 12, "six captions and six edit commands rendered"
    for probe_id, pixels in by_ray.items():
        assert pixels.shape == by_local[probe_id].shape, probe_id
        moved = np.abs(pixels - by_local[probe_id])
        assert moved.max() <= GREY_LEVELS, f"{probe_id}: {(moved > 0).mean():.1%} of pixels moved, up to {moved.max()} levels"
    stats = result.stats
    assert stats.written == 18 and stats.answer_cache_misses > 0 and stats.answer_cache_hits == 0
    assert stats.busy_seconds.get("model", 0) > 0 and stats.busy_seconds.get("render", 0) > 0, "the actors' time comes back"
    assert local_ray.is_initialized(), "a Ray the engine did not start is left running"


def kill_session(session: int) -> None:
    """SIGKILL what is left of the processes of ``session`` (the killed CLI's own Ray instance)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == session:  # fields after the name: state, ppid, pgrp, session
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.mark.slow
def test_a_killed_ray_run_resumes_with_nothing_lost_or_duplicated(local_ray, auditdm_home, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(24):
        photo(200 + i, (64, 56)).save(images / f"img{i:02d}.png")
    settings = dict(
        target="tiny-paligemma2", references=["tiny-gemma3-seed1", "tiny-qwen2.5-vl"], auditor="tiny-gemma3",
        images=str(images), modes=["question"], answer_max_new_tokens=4, auditor_max_new_tokens=8, batch_size=1,
        cache_dir=str(tmp_path / "cache"), progress=False,
    )
    out = tmp_path / "out"
    command = [
        AUDITDM, "audit", "--target", "tiny-paligemma2", "--ensemble", "tiny-gemma3-seed1,tiny-qwen2.5-vl",
        "--auditor", "tiny-gemma3", "--images", str(images), "--modes", "question", "--answer-max-new-tokens", "4",
        "--auditor-max-new-tokens", "8", "--batch-size", "1", "--cache-dir", str(tmp_path / "cache"), "--no-progress",
        "--out", str(out), "--engine", "ray", "--ray-num-cpus", "2", "--ray-batch-size", "1",
    ]
    env = {**os.environ, "AUDITDM_HOME": str(auditdm_home), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("data/test-*.parquet")):
            assert proc.poll() is None, f"the run ended before writing a shard:\n{proc.stderr.read().decode()[-3000:]}"
            assert time.monotonic() < deadline, "no shard within 300 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        kill_session(proc.pid)  # the driver is gone; its Ray instance's processes go too
    proc.stdout.close()
    proc.stderr.close()
    at_kill = len(load_audit(out))
    assert 0 < at_kill < 24, f"killed midway ({at_kill} of 24 probes written)"

    resumed = run_audit(AuditConfig(**settings, out=str(out)), "ray", {"ray_batch_size": 4})
    assert resumed.resumed and resumed.stats.skipped_done == at_kill
    assert resumed.stats.written + at_kill + resumed.summary["issues"] == 24
    rows = fingerprint_rows(out)
    assert len({row["probe_id"] for row in rows}) == len(rows), "no probe written twice"
    run_audit(AuditConfig(**settings, out=str(tmp_path / "local")))
    assert rows == fingerprint_rows(tmp_path / "local"), "nothing lost: the records the local engine writes in one go"
