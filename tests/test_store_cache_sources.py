
from dataclasses import replace

import datasets
import numpy as np
import pytest
from PIL import Image

from auditdm_eval.answering import CachedGenerator
from auditdm_eval.cache import AnswerCache, RenderCache, answer_key
from auditdm_eval.records import FEATURES, Answer, AuditRecord, Probe, Verdict, image_sha256
from auditdm_eval.sources import SourceImage, SourceIssue, SourceOptions, iter_sources
from auditdm_eval.store import AuditStore, Issue, RunMismatchError, load_audit, summarize
from model_adapters import GenerationRequest, GenerationSettings


def photo(seed, size=(48, 40)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def record(i, failure):
    image = photo(i)
    probe = Probe(f"p{i}", f"s{i}", "question", image, image, f"what is {i}?", "original", "auditor", auditor_id="aud")
    target = Answer("t", "cat", "cat")
    refs = [Answer("r1", "dog", "dog"), Answer("r2", "Dog.", "dog")]
    verdict = Verdict("cat", ["dog", "Dog."], "dog", 1.0, True, not failure, failure, float(failure))
    return AuditRecord(probe, target, refs, verdict, run_id="run")


def test_features_match_record_rows():
    assert set(record(0, True).to_row()) == set(FEATURES)


def test_image_hash_is_content_based():
    image = photo(1)
    assert image_sha256(image) == image_sha256(image.copy())
    assert image_sha256(image) != image_sha256(photo(2))


def test_store_writes_shards_that_load_with_full_schema(tmp_path):
    store = AuditStore(tmp_path / "out")
    assert store.open({"target": "t"}) is False
    store.write_shard([record(0, True), record(1, False)])
    store.write_shard([record(2, True)])
    assert [p.name for p in store.shards()] == [f"test-{store.writer_id}-00000.parquet", f"test-{store.writer_id}-00001.parquet"]
    loaded = load_audit(tmp_path / "out")
    assert loaded.features == FEATURES
    assert loaded["probe_id"] == ["p0", "p1", "p2"]
    assert isinstance(loaded[0]["image"], Image.Image) and loaded[0]["image"].size == (48, 40)
    assert loaded[0]["reference_answers"] == ["dog", "Dog."]
    # the plain datasets loader finds the split from the file names
    plain = datasets.load_dataset("parquet", data_dir=str(tmp_path / "out" / "data"))
    assert list(plain) == ["test"] and plain["test"].num_rows == 3
    assert store.done_probe_ids() == {"p0", "p1", "p2"}
    summary = summarize(loaded)
    assert summary["failures"] == 2 and summary["per_mode"]["question"]["failure_rate"] == pytest.approx(2 / 3)


def test_store_refuses_another_run_and_unrelated_files(tmp_path):
    store = AuditStore(tmp_path / "out")
    store.open({"target": "a", "modes": ["question"]})
    store.write_shard([record(0, True)])
    assert store.open({"target": "a", "modes": ["question"]}) is True  # same run: resume
    with pytest.raises(RunMismatchError, match="target: 'a' -> 'b'"):
        store.open({"target": "b", "modes": ["question"]})
    assert store.shards(), "a refused run must not delete what is on disk"
    store.open({"target": "b", "modes": ["question"]}, overwrite=True)
    assert not store.shards()
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(RunMismatchError, match="not empty"):
        AuditStore(other).open({"target": "a"})


def test_issues_are_recorded_once(tmp_path):
    store = AuditStore(tmp_path)
    store.open({})
    issue = Issue("s1", "edit", "render", "boom")
    store.add_issues([issue])
    store.add_issues([issue, Issue("s2", "edit", "render", "boom")])
    assert [i.source_id for i in store.issues()] == ["s1", "s2"]


class CountingModel:
    """A real adapter would be slow here; this one counts calls to check the cache's bookkeeping."""

    model_id = "counting"
    fingerprint = "counting-v1"

    def __init__(self, fail_on=None):
        self.calls = []
        self.fail_on = fail_on

    def generate(self, requests):
        self.calls.append(len(requests))
        if self.fail_on is not None and any(r.prompt == self.fail_on for r in requests):
            raise RuntimeError(f"cannot answer {self.fail_on!r}")
        return [f"answer to {r.prompt}" for r in requests]


def test_answer_cache_persists_and_keys_by_content(tmp_path):
    four = GenerationSettings(max_new_tokens=4)
    requests = [GenerationRequest((photo(i),), f"q{i}", settings=four) for i in range(3)]
    model = CountingModel()
    cache = AnswerCache(tmp_path / "a.sqlite")
    first = CachedGenerator(model, cache)(requests)
    assert [o.text for o in first] == ["answer to q0", "answer to q1", "answer to q2"]
    assert model.calls == [3], "misses are generated in one batched call"
    cache.close()
    reopened = AnswerCache(tmp_path / "a.sqlite")
    again = CachedGenerator(model, reopened)(requests + [GenerationRequest((photo(9),), "q9", settings=four)])
    assert model.calls == [3, 1], "only the new request reaches the model"
    assert again[0].text == "answer to q0"
    five = replace(requests[0], settings=GenerationSettings(max_new_tokens=5))
    assert answer_key("f", requests[0]) != answer_key("f", five), "settings are part of the key"
    same_pixels = GenerationRequest((photo(0).copy(),), "q0", settings=four)
    assert answer_key("f", same_pixels) == answer_key("f", requests[0])
    sampled = replace(requests[0], settings=GenerationSettings(max_new_tokens=4, temperature=1.0))
    assert answer_key("f", replace(sampled, seed=1)) != answer_key("f", replace(sampled, seed=2)), "a sample's seed counts"
    assert answer_key("f", replace(requests[0], seed=1)) == answer_key("f", requests[0]), "a greedy answer is shared by every seed"


def test_a_request_that_raises_costs_only_itself(tmp_path):
    model = CountingModel(fail_on="bad")
    cache = AnswerCache(None)
    outputs = CachedGenerator(model, cache)([GenerationRequest((), "good"), GenerationRequest((), "bad")])
    assert outputs[0].text == "answer to good" and outputs[0].error is None
    assert outputs[1].error and "cannot answer 'bad'" in outputs[1].error
    assert len(cache) == 1, "errors are not cached"


def test_render_cache_roundtrip(tmp_path):
    cache = RenderCache(tmp_path)
    assert cache.get("abc") is None
    cache.put("abc", photo(3))
    assert image_sha256(cache.get("abc")) == image_sha256(photo(3))


def test_folder_source_reports_bad_images_and_goes_on(tmp_path):
    photo(1, (64, 64)).save(tmp_path / "good.png")
    photo(2, (10, 10)).save(tmp_path / "tiny.png")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    items = {item.source_id: item for item in iter_sources(str(tmp_path))}
    assert isinstance(items["good.png"], SourceImage)
    assert isinstance(items["tiny.png"], SourceIssue) and "10x10" in items["tiny.png"].message
    assert isinstance(items["broken.jpg"], SourceIssue) and "replace or remove" in items["broken.jpg"].fix


def test_hf_dataset_source_with_questions(tmp_path):
    ds = datasets.Dataset.from_dict(
        {"img": [photo(1, (40, 40)), photo(2, (40, 40))], "q": ["what colour?", "how many?"], "a": [1, 2], "uid": ["x", "y"]}
    )
    ds.save_to_disk(str(tmp_path / "ds"))
    items = list(iter_sources(f"hf:{tmp_path / 'ds'}", SourceOptions(question_column="q", answer_column="a", id_column="uid")))
    assert [i.source_id for i in items] == ["x", "y"]
    assert items[1].question == "how many?" and items[1].answer == "2"
    with pytest.raises(ValueError, match="column 'nope'"):
        list(iter_sources(f"hf:{tmp_path / 'ds'}", SourceOptions(question_column="nope")))


def test_unrecognised_image_spec_says_what_to_pass():
    with pytest.raises(ValueError, match="skimage:"):
        iter_sources("nonsense")
