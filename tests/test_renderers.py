"""Renderers over tiny random Flux / Flux-Kontext pipelines loaded from disk."""

import numpy as np
import pytest

from auditdm_eval.cache import RenderCache
from auditdm_eval.records import image_sha256
from auditdm_eval.renderers import CachedRenderer, EditRenderer, IdentityRenderer, RegenerateRenderer, RenderSettings
from conftest import photo

SETTINGS = RenderSettings(height=32, width=32, num_inference_steps=2, batch_size=2)


@pytest.fixture(scope="module")
def regenerate(tiny_paths):
    return RegenerateRenderer(str(tiny_paths["tiny-flux"]), SETTINGS)


@pytest.fixture(scope="module")
def edit(tiny_paths):
    return EditRenderer(str(tiny_paths["tiny-flux-kontext"]), SETTINGS)


def pixel_gap(a, b) -> float:
    """Largest per-pixel difference (0-255): batched float kernels may differ in the last bits."""
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max())


def test_regenerate_renders_each_caption_deterministically_by_seed(regenerate):
    captions = ["a red car on a road", "two dogs under a tree", "a red car on a road"]
    images = regenerate.render([photo(0)] * 3, captions, [1, 2, 1])  # batches of 2 and 1
    assert [image.size for image in images] == [(32, 32)] * 3
    assert pixel_gap(images[0], images[2]) <= 2, "same caption and seed, same image, whatever the batch"
    assert pixel_gap(images[0], images[1]) > 10
    assert pixel_gap(regenerate.render([photo(0)], captions[:1], [3])[0], images[0]) > 10, "another seed, another image"


def test_edit_renders_at_the_requested_size_from_any_source_size(edit):
    images = edit.render([photo(1, (96, 64)), photo(2, (40, 40))], ["make the car blue", "add a hat"], [0, 0])
    assert [image.size for image in images] == [(32, 32), (32, 32)]
    again = edit.render([photo(1, (96, 64))], ["make the car blue"], [0])
    assert pixel_gap(again[0], images[0]) <= 2


def test_render_cache_skips_rendering_what_is_on_disk(regenerate, tmp_path):
    calls = []

    class Counting:
        renderer_id, fingerprint = regenerate.renderer_id, regenerate.fingerprint

        def render(self, sources, texts, seeds):
            calls.append(list(texts))
            return regenerate.render(sources, texts, seeds)

    cached = CachedRenderer(Counting(), RenderCache(tmp_path))
    first = [image for image, _ in cached.render([photo(0), photo(1)], ["a cat", "a dog"], [0, 0])]
    second = [image for image, _ in cached.render([photo(0), photo(1), photo(2)], ["a cat", "a dog", "a bus"], [0, 0, 0])]
    assert calls == [["a cat", "a dog"], ["a bus"]]
    assert [image_sha256(i) for i in second[:2]] == [image_sha256(i) for i in first]


def test_a_job_that_raises_costs_only_itself(tmp_path):
    class Picky:
        renderer_id, fingerprint = "picky", "picky-1"

        def render(self, sources, texts, seeds):
            if "bad" in texts:
                raise ValueError("cannot draw 'bad': say what to draw")
            return [photo(seed) for seed in seeds]

    outcomes = CachedRenderer(Picky(), RenderCache(tmp_path)).render([photo(0)] * 3, ["good", "bad", "fine"], [1, 2, 3])
    assert [error is None for _, error in outcomes] == [True, False, True]
    assert "cannot draw 'bad'" in outcomes[1][1] and outcomes[1][0] is None
    assert image_sha256(outcomes[2][0]) == image_sha256(photo(3))


def test_identity_keeps_the_image():
    image = photo(4)
    assert IdentityRenderer().render([image], ["ignored"], [0])[0] is image


def test_missing_pipeline_says_what_to_pass(tmp_path):
    with pytest.raises(RuntimeError, match="DiffusionPipeline.save_pretrained"):
        RegenerateRenderer(str(tmp_path / "nothing-here"), SETTINGS)
