"""Shared fixtures: tiny random checkpoints, built once per test session, loaded from disk."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


def _pin_kernels_and_threads() -> None:
    """Before torch loads (kernels.py is read by path: importing the package would load torch): the
    pixels recorded in the engines' fingerprint are AVX2 kernels' with 2 threads (the CI's 2 cores),
    and must hold on an AVX512 CPU (unpinned, its rendered pixels differed) and on more cores."""
    path = Path(__file__).resolve().parents[1] / "auditdm_eval" / "kernels.py"
    spec = importlib.util.spec_from_file_location("_auditdm_kernels", path)
    kernels = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(kernels)
    assert "torch" not in sys.modules, "torch loaded before conftest: its kernels can no longer be pinned"
    for name, value in {**kernels.portable_kernels(), "OMP_NUM_THREADS": "2"}.items():
        os.environ.setdefault(name, value)


_pin_kernels_and_threads()

# The files that take longest start first, so that the two xdist workers (pyproject's addopts) do not end
# with one of them alone on a long file. A scheduling hint only: any order passes.
LONGEST_FILES_FIRST = (
    "test_ray_engine.py", "test_auditor_training.py", "test_readme.py", "test_lmms_eval.py", "test_suite_lmms_eval.py",
    "test_vlmeval.py", "test_cli.py", "test_rectify.py", "test_reliability.py", "test_leaderboard.py",
)


def pytest_collection_modifyitems(items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(scope="session")
def auditdm_home(tmp_path_factory) -> Path:
    """AUDITDM_HOME for the session: tiny checkpoints are built here once and reused by every test."""
    home = Path(os.environ.get("AUDITDM_TEST_HOME") or tmp_path_factory.mktemp("auditdm_home"))
    old = os.environ.get("AUDITDM_HOME")
    os.environ["AUDITDM_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("AUDITDM_HOME", None)
    else:
        os.environ["AUDITDM_HOME"] = old


@pytest.fixture(scope="session")
def tiny_paths(auditdm_home) -> dict[str, Path]:
    from model_adapters import resolve
    from model_adapters.registry import tiny_root
    from model_adapters import tiny

    names = ["tiny-gemma3", "tiny-gemma3-seed1", "tiny-paligemma2", "tiny-qwen2.5-vl"]
    paths = {name: Path(resolve(name)[0]) for name in names}
    paths["tiny-flux"] = tiny.ensure_tiny("tiny-flux", tiny_root())
    paths["tiny-flux-kontext"] = tiny.ensure_tiny("tiny-flux-kontext", tiny_root())
    # the same weights under a second name: an ensemble of two identical models always agrees
    twin = auditdm_home / "twin-gemma3"
    if not twin.exists():
        shutil.copytree(paths["tiny-gemma3-seed1"], twin)
    paths["twin-gemma3"] = twin
    return paths


@pytest.fixture(scope="session")
def world_auditor(auditdm_home) -> Path:
    """The warm-started world auditor users get (the shipped copy, installed under AUDITDM_HOME)."""
    import json

    import auditdm_eval  # noqa: F401  (registers the world's model names)
    from model_adapters import resolve

    path = Path(resolve("world-auditor")[0])
    report = json.loads((path / "warm_start.json").read_text())["validation"]
    assert report["captions_rendered"] > 0.8 and report["objects_described_right"] > 0.7, report
    return path


def ctrl_c_reaches_it() -> None:
    """A child's Ctrl-C as a terminal delivers it: a shell starts background jobs (``cmd &``, nohup) with
    SIGINT ignored, which the child would inherit, and Python then never raises KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def photo(seed: int, size=(64, 48)) -> Image.Image:
    """A smooth random picture (gradients plus blobs), distinct per seed."""
    rng = np.random.default_rng(seed)
    h, w = size[1], size[0]
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * rng.uniform(1, 4) + yy * rng.uniform(1, 4) + rng.uniform(0, 255)) % 255 for _ in range(3)], -1)
    return Image.fromarray(base.astype(np.uint8))


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        photo(i, (64 + 8 * i, 48)).save(folder / f"img{i}.png")
    return folder


FAILURE_TYPES = ["counting", "color recognition"]


def make_typed_audit(root: Path, tiny_paths: dict, first_seed: int) -> Path:
    """An audit whose ensemble is one model's weights under two names (it always agrees), so every
    probe the target answers differently is a discovered failure; failure types are assigned
    round-robin, as the report's classifier would. Returns the audit directory."""
    from auditdm_eval.config import AuditConfig
    from auditdm_eval.runner import run_audit
    from auditdm_eval.store import load_audit

    images = root / "images"
    images.mkdir()
    for i in range(4):
        photo(first_seed + i, (64, 56)).save(images / f"img{i}.png")
    run_audit(AuditConfig(
        target="tiny-paligemma2", references=["tiny-gemma3-seed1", str(tiny_paths["twin-gemma3"])],
        auditor="tiny-gemma3", images=str(images), out=str(root / "raw"), answer_max_new_tokens=5,
        auditor_max_new_tokens=10, cache_dir=str(root / "cache"), progress=False,
    ))
    typed = load_audit(root / "raw").map(lambda row, i: {"failure_type": FAILURE_TYPES[i % 2]}, with_indices=True)
    (root / "audit" / "data").mkdir(parents=True)
    typed.to_parquet(str(root / "audit" / "data" / "test-00000.parquet"))
    shutil.copy(root / "raw" / "manifest.json", root / "audit" / "manifest.json")
    return root / "audit"
