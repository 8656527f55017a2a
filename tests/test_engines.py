"""The stage engines: output identical to the pre-redesign engine, distinct samples per image, and a warm
rerun that writes the same bytes without loading a model or decoding an image."""

import json
from collections import defaultdict
from pathlib import Path

from auditdm_eval.config import PRESETS, AuditConfig
from auditdm_eval.runner import run_audit
from auditdm_eval.store import load_audit

from conftest import photo

FINGERPRINT = Path(__file__).parent / "data" / "engine_fingerprint.json"
FIELDS = [
    "probe_id", "source_id", "mode", "image_sha256", "question", "provenance", "question_origin", "caption",
    "edit_command", "target_answer", "reference_answers", "consensus_answer", "agreement", "ensemble_agrees",
    "target_matches_consensus", "is_failure", "reward",
]


# Rendered images whose low bits follow the CPU even with AVX2 kernels pinned: the hash another CPU's
# render gives -> the recorded one (everything downstream of the image, texts and answers, is compared as
# recorded). The tiny Kontext edit of skimage:rocket, on a 2-core AMD EPYC (the record: an Intel Xeon).
SAME_RENDER_ON_OTHER_CPUS = {
    "6be0ed05b5f24e58f8a7521b401abef1ec8c5bb2ddc17fcc4c104fa403346228": "a1437a6ed1e65d5f439a030f218dd33ae58cf61ffeb81bf56d28d9b0e6447fb8",
}


def fingerprint_rows(out: Path) -> list[dict]:
    rows = [{key: row[key] for key in FIELDS} for row in load_audit(out).remove_columns(["image", "source_image"])]
    for row in rows:
        row["agreement"] = round(float(row["agreement"]), 4)
        row["image_sha256"] = SAME_RENDER_ON_OTHER_CPUS.get(row["image_sha256"], row["image_sha256"])
    return sorted(rows, key=lambda row: row["probe_id"])


def fingerprint_configs(tmp_path: Path) -> dict[str, AuditConfig]:
    tiny = dict(PRESETS["tiny"])
    models = {key: tiny.pop(key) for key in ("target", "references", "auditor", "images")}
    return {
        "tiny_preset": AuditConfig(**models, out=str(tmp_path / "a"), cache_dir=str(tmp_path / "ca"), progress=False, **tiny),
        "question_two_references": AuditConfig(
            target="tiny-paligemma2", references=["tiny-gemma3-seed1", "tiny-qwen2.5-vl"], auditor="tiny-gemma3",
            images="skimage:astronaut,chelsea,coffee,rocket", out=str(tmp_path / "b"), cache_dir=str(tmp_path / "cb"),
            answer_max_new_tokens=5, auditor_max_new_tokens=10, batch_size=3, progress=False,
        ),
    }


def test_local_engine_writes_what_the_engine_before_the_redesign_wrote(tiny_paths, tmp_path):
    """Probe ids, auditor texts, rendered pixels, answers and verdicts of two fixed tiny-model runs
    (all three modes; a two-model ensemble) equal the fingerprint recorded before the stages were
    reshaped into batch callables."""
    expected = json.loads(FINGERPRINT.read_text())
    for name, config in fingerprint_configs(tmp_path).items():
        run_audit(config)
        assert fingerprint_rows(Path(config.out)) == expected[name], name


def test_probes_per_image_gives_distinct_probes(tiny_paths, tmp_path):
    config = AuditConfig(
        target="tiny-paligemma2", references=["tiny-gemma3-seed1"], auditor="tiny-gemma3", images="skimage:astronaut,coffee",
        out=str(tmp_path / "out"), modes=["question", "regenerate", "edit"], regenerate_model="tiny-flux",
        edit_model="tiny-flux-kontext", render_size=32, render_steps=2, answer_max_new_tokens=4, auditor_max_new_tokens=10,
        probes_per_image=3, cache_dir=str(tmp_path / "cache"), progress=False,
    )
    result = run_audit(config)
    rows = list(load_audit(result.out).remove_columns(["source_image"]))
    assert len(rows) + result.summary["issues"] == 2 * 3 * 3
    groups = defaultdict(list)
    for row in rows:
        groups[(row["source_id"], row["mode"])].append(row)
    issues = [json.loads(line) for line in (result.out / "issues.jsonl").read_text().splitlines()]
    assert all("returned an empty" in issue["message"] for issue in issues), "a random auditor may sample an empty text"
    assert len(groups) == 6 and sum(len(group) for group in groups.values()) >= 15
    for (source, mode), group in groups.items():
        texts = {(row["question"], row["caption"], row["edit_command"]) for row in group}
        assert len(texts) == len(group), f"{source} {mode}: samples collapsed into {texts}"
        assert len({row["probe_id"] for row in group}) == len(group)
        if mode != "question":
            assert len({row["image_sha256"] for row in group}) == len(group), f"{source} {mode}: one image reused"
    again = run_audit(config.with_overrides(out=str(tmp_path / "again")))
    assert again.answer_cache_misses == 0, "every sample is cached under its own seed"
    assert fingerprint_rows(again.out) == fingerprint_rows(result.out)


def shard_images(out: Path) -> dict[str, tuple]:
    """Each probe's stored image and source image cells, as bytes (what a shard holds, not decoded)."""
    import datasets

    dataset = load_audit(out).cast_column("image", datasets.Image(decode=False)).cast_column("source_image", datasets.Image(decode=False))
    return {
        row["probe_id"]: (row["image"]["bytes"], (row["source_image"] or {}).get("bytes"))
        for row in dataset.select_columns(["probe_id", "image", "source_image"])
    }


def test_a_warm_rerun_writes_the_same_bytes_without_loading_or_decoding(tiny_paths, tmp_path):
    """All three modes, everything in the caches: the rerun loads no model or pipeline, and writes byte
    for byte the images the cold run wrote (the render cache's PNG files are stored as they are, and are
    what the shard would have encoded)."""
    import io

    import datasets
    from PIL import Image

    config = fingerprint_configs(tmp_path)["tiny_preset"]
    cold = run_audit(config)
    assert {"load", "model", "render"} <= set(cold.stats.busy_seconds)
    warm = run_audit(config.with_overrides(out=str(tmp_path / "warm")))
    assert warm.answer_cache_misses == 0 and warm.answer_cache_hits == cold.answer_cache_misses
    assert not warm.stats.busy_seconds, f"nothing loaded, asked or rendered: {warm.stats.busy_seconds}"
    assert fingerprint_rows(warm.out) == fingerprint_rows(cold.out)
    stored = shard_images(cold.out)
    assert shard_images(warm.out) == stored
    for probe_id, (image, _) in stored.items():
        decoded = Image.open(io.BytesIO(image))
        decoded.load()
        if decoded.format == "PNG" and not decoded.info:  # rendered: exactly what the shard's encoder makes of the pixels
            assert datasets.Image().encode_example(decoded.convert("RGB"))["bytes"] == image, probe_id


def test_pixel_hashes_of_decoded_files_are_remembered(tmp_path):
    """With a hash memo, a file decoded before is known by its bytes: same hash, same pixels, decoded
    only when first used; files the memo cannot vouch for (greyscale, changed bytes) decode as before."""
    import numpy as np

    from auditdm_eval.sources import SourceOptions, iter_sources

    folder = tmp_path / "images"
    folder.mkdir()
    photo(1, (64, 48)).save(folder / "a.png")
    photo(2, (64, 48)).save(folder / "b.jpg", quality=90)
    photo(3, (64, 48)).convert("L").save(folder / "c.png")
    def undecoded(image) -> bool:  # an opened file whose pixels are still to be read
        return bool(getattr(image, "tile", None))

    options = SourceOptions(hash_memo=str(tmp_path / "images.sqlite"))
    first = {item.source_id: item for item in iter_sources(str(folder), options)}
    again = {item.source_id: item for item in iter_sources(str(folder), options)}
    for name in ("a.png", "b.jpg"):
        assert undecoded(again[name].image), f"{name}: not decoded until its pixels are used"
        assert again[name].image_sha == first[name].image_sha and again[name].encoded == first[name].encoded
        assert np.array_equal(np.asarray(again[name].image), np.asarray(first[name].image))
        assert again[name].image.mode == "RGB" and again[name].image.format is None and not again[name].image.info
    assert not undecoded(again["c.png"].image) and again["c.png"].image_sha == first["c.png"].image_sha
    photo(4, (64, 48)).save(folder / "a.png")
    changed = {item.source_id: item for item in iter_sources(str(folder), options)}
    assert not undecoded(changed["a.png"].image) and changed["a.png"].image_sha != first["a.png"].image_sha
    assert not undecoded(next(iter(iter_sources(str(folder), SourceOptions()))).image), "no memo: decoded at once"


def test_shards_are_the_files_datasets_writes(tmp_path):
    """The shard writer skips ``datasets``' fingerprinting, not its format: the same bytes on disk."""
    import datasets

    from auditdm_eval.records import FEATURES, Answer, AuditRecord, Probe, Verdict
    from auditdm_eval.store import AuditStore

    def record(i: int) -> AuditRecord:
        image = photo(i, (40, 32))
        probe = Probe(
            f"p{i}", f"s{i}", "edit", image, photo(i + 9, (40, 32)), "what?", "edited", "auditor", edit_command="make it red",
            extra={"truth": i},
        )
        verdict = Verdict("a", ["b", "c"], None, 0.5, False, False, False, 0.0, None)
        return AuditRecord(probe, Answer("t", "a", "a"), [Answer("r1", "b", "b"), Answer("r2", "c", "c")], verdict, "run")

    records = [record(i) for i in range(3)]
    with AuditStore(tmp_path / "out") as store:
        store.open({"run": 1})
        shard = store.write_shard(records)
    datasets.Dataset.from_list([r.to_row() for r in records], features=FEATURES).to_parquet(str(tmp_path / "reference.parquet"))
    assert shard.read_bytes() == (tmp_path / "reference.parquet").read_bytes()
