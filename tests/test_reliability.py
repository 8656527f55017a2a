"""Issue 10: the audit's store and image sources under concurrent runs, hostile images, corrupt
shards and --overwrite, mostly through the real ``auditdm`` CLI as a user meets them."""

from __future__ import annotations

import gc
import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from auditdm_eval.records import image_sha256
from auditdm_eval.sources import SourceImage, SourceIssue, SourceOptions, iter_sources
from auditdm_eval.store import AuditStore, CorruptShardError, Issue, OutputInUseError, RunMismatchError, load_audit, load_audited
from conftest import photo

REPO = Path(__file__).resolve().parents[1]
AUDITDM = str(Path(sys.executable).with_name("auditdm"))
MODELS = ["--target", "tiny-paligemma2", "--ensemble", "tiny-gemma3-seed1", "--auditor", "tiny-gemma3"]


def cli_env(home: Path) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "AUDITDM_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def audit(home: Path, images: Path, out: Path, cache: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [AUDITDM, "audit", *MODELS, "--images", str(images), "--mode", "question", "--out", str(out),
            "--cache-dir", str(cache), "--no-progress", *extra]
    return subprocess.run(args, env=cli_env(home), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def audited(tiny_paths, auditdm_home, tmp_path_factory):
    """One finished CLI audit (2 images, one shard each) that tests copy and then break."""
    root = tmp_path_factory.mktemp("audited")
    images = root / "images"
    images.mkdir()
    for i in range(3):
        photo(i, (64 + 8 * i, 48)).save(images / f"img{i}.png")
    done = audit(auditdm_home, images, root / "out", root / "cache", "--limit", "2", "--batch-size", "1")
    assert done.returncode == 0, done.stderr
    return {"images": images, "out": root / "out", "cache": root / "cache", "home": auditdm_home}


def copy_of(audited, tmp_path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(audited["out"], out)
    return out


def rerun(audited, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return audit(audited["home"], audited["images"], out, audited["cache"], "--limit", "2", "--batch-size", "1", *extra)


def probe_ids(out: Path) -> list[str]:
    return datasets.load_dataset("parquet", data_dir=str(out / "data"), split="test")["probe_id"]


# -- item 1: one run owns --out; writers never collide ------------------------------------------
HOLDER = """
import json, sys, time
from pathlib import Path
from auditdm_eval.store import AuditStore
out = Path(sys.argv[1])
store = AuditStore(out)
store.open(json.loads((out / "manifest.json").read_text())["identity"])
print("holding", flush=True)
time.sleep(600)
"""


def test_a_second_run_fails_at_once_naming_the_holder_and_a_killed_holder_is_taken_over(audited, tmp_path):
    out = copy_of(audited, tmp_path)
    before = sorted(p.name for p in (out / "data").iterdir())
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], env=cli_env(audited["home"]), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        second = rerun(audited, out)
        assert second.returncode == 2, second.stderr
        assert "in use by another audit run" in second.stderr and f"pid {holder.pid}" in second.stderr
        assert "another --out" in second.stderr, "the message says what to do"
        assert time.monotonic() - started < 60, "refused before any model loads"
        assert sorted(p.name for p in (out / "data").iterdir()) == before, "the refused run wrote nothing"
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed run: its lock must not outlive it
        holder.wait()
    taken_over = rerun(audited, out)
    assert taken_over.returncode == 0, taken_over.stderr
    assert "(resumed)" in taken_over.stderr
    ids = probe_ids(out)
    assert len(ids) == len(set(ids)) == 2


def test_the_store_lock_is_exclusive_and_released_by_close_context_and_collection(tmp_path):
    out = tmp_path / "out"
    first = AuditStore(out)
    first.open({"target": "a"})
    with pytest.raises(OutputInUseError, match="another AuditStore of this same process that is still open") as refused:
        AuditStore(out).open({"target": "a"})
    assert refused.value.holder["pid"] == os.getpid()
    assert isinstance(refused.value, RunMismatchError), "the CLI reports it as a refused --out (exit 2)"
    first.close()
    with AuditStore(out) as second:
        assert second.open({"target": "a"}) is True
        with pytest.raises(OutputInUseError):
            AuditStore(out).open({"target": "a"})
    third = AuditStore(out)
    third.open({"target": "a"})
    del third
    gc.collect()
    AuditStore(out).open({"target": "a"})  # a store nobody holds any more gave the folder back
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(RunMismatchError, match="not empty"):
        AuditStore(foreign).open({"target": "a"})
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"], "a refused foreign folder gets no lock file either"


def record(i: int):
    from auditdm_eval.records import Answer, AuditRecord, Probe, Verdict

    image = photo(i, (40, 40))
    probe = Probe(f"p{i}", f"s{i}", "question", image, image, f"what is {i}?", "original", "auditor")
    verdict = Verdict("cat", ["dog"], "dog", 1.0, True, False, True, 1.0)
    return AuditRecord(probe, Answer("t", "cat", "cat"), [Answer("r", "dog", "dog")], verdict, run_id="run")


def test_writers_that_interleave_never_overwrite_each_other(tmp_path, monkeypatch):
    """Two writers whose shard writes overlap in time (as two engines' workers would) keep both
    shards; shards named the old way are read alongside."""
    out = tmp_path / "out"
    main = AuditStore(out)
    main.open({"target": "a"})
    main.write_shard([record(0)])
    old_name = main.shards()[0].rename(main.data_dir / "test-00000.parquet")  # as written before this change
    other = AuditStore(out)  # a second writer of the same run (it does not own the folder)
    real_to_parquet = datasets.Dataset.to_parquet
    temp_names = []

    def overlapping(dataset, path, *args, **kwargs):
        temp_names.append(Path(path).name)
        if len(temp_names) == 1:  # while the first shard is being written, the other writer writes one
            other.write_shard([record(2)])
        return real_to_parquet(dataset, path, *args, **kwargs)

    monkeypatch.setattr(datasets.Dataset, "to_parquet", overlapping)
    main.write_shard([record(1)])
    monkeypatch.undo()
    assert len(set(temp_names)) == 2, f"temporary names collide: {temp_names}"
    names = [p.name for p in main.shards()]
    assert names[0] == old_name.name and len(names) == 3
    assert {main.writer_id, other.writer_id} == {n.split("-", 1)[1].rsplit("-", 1)[0] for n in names[1:]}
    assert sorted(load_audit(out)["probe_id"]) == ["p0", "p1", "p2"]
    assert main.done_probe_ids() == {"p0", "p1", "p2"}


# -- items 2, 4, 7: hostile images ---------------------------------------------------------------
def bomb_png(width=20000, height=9000) -> bytes:
    """A 150-byte PNG that declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4 * (width + 1))) + chunk(b"IEND", b"")


DEEP = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)  # 0 .. 64491: 16-bit greys
CLEAR = np.zeros((48, 64, 4), np.uint8)
CLEAR[..., 0], CLEAR[:, :32, 3] = 200, 255  # left half opaque red, right half fully transparent


def hostile_folder(folder: Path, unreadable: bool = True) -> Path:
    """Images of every awkward kind the models can see, and (``unreadable``) files they cannot."""
    folder.mkdir()
    photo(1, (64, 48)).save(folder / "good.png")
    if unreadable:
        (folder / "bomb.png").write_bytes(bomb_png())
        (folder / "empty.png").write_bytes(b"")
        (folder / "notes.jpg").write_text("not a picture at all")
        whole = io.BytesIO()
        photo(2, (64, 48)).save(whole, "JPEG")
        (folder / "cut.jpg").write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    Image.fromarray(DEEP).save(folder / "deep16.png")
    Image.fromarray(CLEAR, "RGBA").save(folder / "clear.png")
    photo(3, (64, 48)).convert("CMYK").save(folder / "cmyk.jpg")
    frames = [Image.fromarray(np.full((48, 64, 3), grey, np.uint8)) for grey in (30, 220)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    return folder


def test_hostile_images_are_named_issues_once_and_the_dataset_shows_what_the_models_saw(tiny_paths, auditdm_home, tmp_path):
    images = hostile_folder(tmp_path / "images")
    out = tmp_path / "out"
    first = audit(auditdm_home, images, out, tmp_path / "cache")
    assert first.returncode == 0, first.stderr  # a decompression bomb used to abort every run
    issues = {i["source_id"]: i for i in map(json.loads, (out / "issues.jsonl").read_text().splitlines())}
    assert set(issues) == {"bomb.png", "empty.png", "notes.jpg", "cut.jpg"}
    assert "20000x9000" in issues["bomb.png"]["message"] and "--max-image-pixels" in issues["bomb.png"]["fix"]
    assert "empty file (0 bytes)" in issues["empty.png"]["message"]
    assert "not an image" in issues["notes.jpg"]["message"]
    assert "truncated" in issues["cut.jpg"]["message"]
    assert all(not re.search(r"at 0x[0-9a-f]", i["message"]) and i["fix"] for i in issues.values()), "stable messages, each with its fix"
    lines = (out / "issues.jsonl").read_text()
    again = audit(auditdm_home, images, out, tmp_path / "cache")
    assert again.returncode == 0 and "(resumed)" in again.stderr, again.stderr
    assert (out / "issues.jsonl").read_text() == lines, "a rerun records the same bad files once"
    assert [i.source_id for i in AuditStore(out).skipped_inputs(limit=2)] == ["bomb.png", "cut.jpg"]

    rows = {row["source_id"]: row for row in load_audit(out)}
    assert set(rows) == {"good.png", "deep16.png", "clear.png", "cmyk.jpg", "anim.gif"}
    for row in rows.values():  # the stored image is the one the models were shown (same pixel hash)
        assert row["image"].mode == "RGB" and image_sha256(row["image"]) == row["image_sha256"]
    deep = np.asarray(rows["deep16.png"]["image"])[..., 0].astype(int)
    assert np.abs(deep - np.rint(DEEP / 257)).max() <= 1, "16-bit greys are scaled to 8 bits, not clipped"
    assert (deep == 255).mean() < 0.01
    clear = np.asarray(rows["clear.png"]["image"])
    assert (clear[:, :32] == [200, 0, 0]).all() and (clear[:, 32:] == 255).all(), "transparency is composited on white"
    assert np.asarray(rows["anim.gif"]["image"]).max() == 30, "an animation is audited and stored as its first frame"
    raw = load_audit(out).cast_column("image", datasets.Image(decode=False))
    kept = {row["source_id"]: row["image"]["bytes"] for row in raw}
    assert kept["good.png"] == (images / "good.png").read_bytes(), "an RGB file is stored as it is"
    assert kept["cmyk.jpg"] != (images / "cmyk.jpg").read_bytes(), "a CMYK file is stored as the RGB the models saw"


def test_the_stored_image_is_the_one_the_models_saw(tmp_path):
    """Item 4 without models: each source image as the pipeline stores it (its own bytes when
    kept, else the converted image), written as a shard and read back."""
    from auditdm_eval.records import Answer, AuditRecord, Probe, Verdict

    images = hostile_folder(tmp_path / "images", unreadable=False)
    sources = {i.source_id: i for i in iter_sources(str(images)) if isinstance(i, SourceImage)}
    assert set(sources) == {"good.png", "deep16.png", "clear.png", "cmyk.jpg", "anim.gif"}
    assert sources["good.png"].encoded == (images / "good.png").read_bytes()
    assert all(sources[name].encoded is None for name in ("deep16.png", "clear.png", "cmyk.jpg", "anim.gif"))
    store = AuditStore(tmp_path / "out")
    verdict = Verdict("a", ["b"], "b", 1.0, True, False, True, 1.0)
    store.write_shard([
        AuditRecord(Probe(name, name, "question", src.image, src.image, "q?", "original", "auditor", source_encoded=src.encoded),
                    Answer("t", "a", "a"), [Answer("r", "b", "b")], verdict)
        for name, src in sources.items()
    ])
    stored = {row["source_id"]: row["image"] for row in load_audit(tmp_path / "out")}
    for name, src in sources.items():
        assert stored[name].mode == "RGB" and np.array_equal(np.asarray(stored[name]), np.asarray(src.image)), name
    deep = np.asarray(stored["deep16.png"])[..., 0].astype(int)
    assert np.abs(deep - np.rint(DEEP / 257)).max() <= 1 and (deep == 255).mean() < 0.01, "scaled, not clipped"
    clear = np.asarray(stored["clear.png"])
    assert (clear[:, :32] == [200, 0, 0]).all() and (clear[:, 32:] == 255).all(), "composited on white"
    assert np.asarray(stored["anim.gif"]).max() == 30, "the first frame"
    cmyk = Image.open(images / "cmyk.jpg")
    assert np.array_equal(np.asarray(stored["cmyk.jpg"]), np.asarray(cmyk.convert("RGB")))


def test_any_decoder_failure_is_an_issue_and_the_pixel_limit_is_an_option(tmp_path, monkeypatch):
    photo(1, (64, 48)).save(tmp_path / "a.png")
    photo(2, (64, 48)).save(tmp_path / "b.png")
    assert all(isinstance(i, SourceIssue) and "over the limit" in i.message for i in iter_sources(str(tmp_path), SourceOptions(max_pixels=3000)))
    assert all(isinstance(i, SourceImage) for i in iter_sources(str(tmp_path), SourceOptions(max_pixels=3072)))
    (tmp_path / "bomb.png").write_bytes(bomb_png())
    bomb = next(i for i in iter_sources(str(tmp_path)) if i.source_id == "bomb.png")
    assert isinstance(bomb, SourceIssue) and "180.0 megapixels" in bomb.message
    real_open = Image.open

    def flaky_open(fp, *args, **kwargs):
        image = real_open(fp, *args, **kwargs)
        if image.size == (64, 48) and not hasattr(flaky_open, "raised"):
            flaky_open.raised = True
            raise RuntimeError(f"decoder crashed on {object()!r}")
        return image

    monkeypatch.setattr(Image, "open", flaky_open)
    items = list(iter_sources(str(tmp_path), SourceOptions(max_pixels=10**9)))
    crashed = next(i for i in items if i.source_id == "a.png")
    assert isinstance(crashed, SourceIssue) and "RuntimeError: decoder crashed on <object object>" in crashed.message
    assert isinstance(next(i for i in items if i.source_id == "b.png"), SourceImage), "the run goes on"


def test_issues_are_stable_deduplicated_with_older_lines_and_the_first_skipped_files_are_named(tmp_path):
    store = AuditStore(tmp_path)
    store.open({})
    # as an earlier version wrote it: object address in the text, fix inside the message
    old = {"source_id": "x.png", "mode": "*", "stage": "input",
           "message": "cannot read image (cannot identify image file <_io.BytesIO object at 0x7f3a2c1b9e40>) -> replace or remove the file"}
    store.issues_path.write_text(json.dumps(old) + "\n")
    store.add_issues([Issue("x.png", "*", "input", "cannot read image (cannot identify image file <_io.BytesIO object at 0x7f00deadbeef>) -> replace or remove the file")])
    store.add_issues([Issue("y.png", "*", "input", "cannot read image: empty file (0 bytes)", "replace or remove the file"),
                      Issue("y.png", "*", "input", "cannot read image: empty file (0 bytes)", "replace or remove the file"),
                      Issue("p1", "question", "answer:m", "model raised", ""),
                      Issue("z.png", "*", "input", "cannot read image: truncated", "re-export it")])
    issues = store.issues()
    assert [i.source_id for i in issues] == ["x.png", "y.png", "p1", "z.png"]
    assert issues[0].message == "cannot read image (cannot identify image file <_io.BytesIO object>)"
    assert issues[0].fix == "replace or remove the file"
    assert [str(i) for i in store.skipped_inputs(limit=2)] == [
        "x.png: cannot read image (cannot identify image file <_io.BytesIO object>) -> replace or remove the file",
        "y.png: cannot read image: empty file (0 bytes) -> replace or remove the file",
    ]
    assert len(store.skipped_inputs()) == 3


# -- item 3: corrupt shards ----------------------------------------------------------------------
def test_a_corrupt_shard_is_named_by_every_reader_then_moved_aside_and_redone(audited, tmp_path):
    out = copy_of(audited, tmp_path)
    shard = sorted((out / "data").glob("test-*.parquet"))[0]
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # cut in half
    for read in (load_audit, load_audited, lambda o: AuditStore(o).done_probe_ids()):
        with pytest.raises(CorruptShardError, match=shard.name) as refused:
            read(out)
        assert "Rerun the audit with the same settings" in str(refused.value)
    resumed = rerun(audited, out)
    assert resumed.returncode == 0, resumed.stderr
    assert shard.name in resumed.stderr and "moved to" in resumed.stderr, "the user is told which file was bad"
    assert (out / "corrupt" / shard.name).read_bytes() == data[: len(data) // 2], "moved aside, not deleted"
    ids = probe_ids(out)
    assert len(ids) == len(set(ids)) == 2, "its probe was computed again, nothing duplicated"
    assert "wrote 1 probes" in resumed.stderr
    assert any(i.stage == "store" and i.source_id == f"data/{shard.name}" for i in AuditStore(out).issues())


def test_a_shard_of_the_wrong_schema_is_moved_aside_on_resume(tmp_path):
    store = AuditStore(tmp_path / "out")
    store.open({"target": "a"})
    store.write_shard([record(0)])
    store.close()
    stranger = store.data_dir / "test-99999.parquet"
    datasets.Dataset.from_dict({"probe_id": ["q"], "colour": ["red"]}).to_parquet(str(stranger))
    with pytest.raises(CorruptShardError, match="missing column"):
        load_audit(tmp_path / "out")
    with AuditStore(tmp_path / "out") as again:
        assert again.open({"target": "a"}) is True
        assert [p.name for p in again.moved_aside] == ["test-99999.parquet"]
    assert load_audit(tmp_path / "out")["probe_id"] == ["p0"]


# -- item 8: --overwrite removes the replaced run's derived files, and nothing else --------------
def test_overwrite_removes_the_replaced_runs_derived_files_only(audited, tmp_path):
    out = copy_of(audited, tmp_path)
    (out / "report").mkdir()
    for name in ("report.md", "failure_rates.png"):
        (out / "report" / name).write_text("of the old run")
    (out / "report" / "my-notes.txt").write_text("mine")
    (out / "hub" / "data").mkdir(parents=True)
    for name in ("README.md", "manifest.json", "data/test-00000-of-00001.parquet"):
        (out / "hub" / name).write_text("of the old run")
    (out / "labels.jsonl").write_text('{"probe_id": "p", "label": "ambiguous"}\n')
    (out / "corrupt").mkdir()
    (out / "corrupt" / "test-00009.parquet").write_text("old")
    (out / "notes.txt").write_text("mine")
    replaced = rerun(audited, out, "--seed", "1", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert "(resumed)" not in replaced.stderr
    assert sorted(p.name for p in (out / "report").iterdir()) == ["my-notes.txt"], "only what `auditdm report` wrote goes"
    assert not (out / "hub").exists() and not (out / "corrupt").exists()
    assert not (out / "labels.jsonl").exists(), "old labels would be read as labels of the new probes"
    assert [p.read_text() for p in out.glob("labels-replaced-*.jsonl")] == ['{"probe_id": "p", "label": "ambiguous"}\n']
    assert (out / "notes.txt").read_text() == "mine"
    assert json.loads((out / "manifest.json").read_text())["identity"]["seed"] == 1
    assert len(probe_ids(out)) == 2


# -- a checkpoint trained on in place is another run, not one to resume -------------------------
def test_an_audit_of_a_checkpoint_trained_on_in_place_starts_afresh_rather_than_resuming(world_auditor, tmp_path, capsys):
    """The audit folder's manifest holds the fingerprint of each model given as a local folder: the same
    path with new weights (GRPO continued, a checkpoint overwritten) is refused, naming the weights, where
    it once resumed silently and reported the old weights' probes."""
    from auditdm_eval.cli import main as auditdm

    auditor, out = tmp_path / "auditor", tmp_path / "out"
    shutil.copytree(world_auditor, auditor)
    args = [
        "audit", "--target", "world-target-mirror", "--ensemble", "world-oracle-noisy-a,world-oracle-noisy-b,world-oracle-noisy-c",
        "--agreement", "majority", "--auditor", str(auditor), "--images", "world:3:9", "--no-cache", "--no-progress",
        "--auditor-max-new-tokens", "24", "--out", str(out),
    ]
    assert auditdm(args) == 0
    identity = json.loads((out / "manifest.json").read_text())["identity"]
    assert list(identity["weights"]) == [str(auditor)], "registered models (the world's) name fixed weights"
    assert auditdm(args) == 0 and "(resumed)" in capsys.readouterr().err, "the same weights resume"

    weights = auditor / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))  # trained on: new weights file
    assert auditdm(args) == 2
    assert "weights" in capsys.readouterr().err and sorted(p.name for p in (out / "data").iterdir()), "refused; nothing lost"
    assert auditdm([*args, "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["identity"]["weights"] != identity["weights"]
    legacy = json.loads((out / "manifest.json").read_text())
    del legacy["identity"]["weights"]  # as runs made before fingerprints were kept
    (out / "manifest.json").write_text(json.dumps(legacy))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert auditdm(args) == 0 and "(resumed)" in capsys.readouterr().err, "such a run still resumes, as it always did"
