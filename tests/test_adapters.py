"""The transformers backend over tiny random PaliGemma2, Gemma3 and Qwen2.5-VL checkpoints."""

import pytest

from conftest import photo
from model_adapters import GenerationRequest, ModelLoadError, TransformersVLM, UnknownModelError, load_model, resolve
from model_adapters.families import PaliGemmaFormat, prompt_format_for

FAMILIES = ["tiny-paligemma2", "tiny-gemma3", "tiny-qwen2.5-vl"]


@pytest.fixture(scope="module")
def adapters(tiny_paths):
    return {name: load_model(name, batch_size=4) for name in FAMILIES}


def requests():
    return [
        GenerationRequest((photo(1, (64, 48)),), "what colour is the car?"),
        GenerationRequest((photo(2, (40, 40)),), "how many animals are in this picture of the park today?"),
        GenerationRequest((photo(3, (80, 32)),), "You are given an image. Generate a single question.", task="instruct"),
    ]


@pytest.mark.parametrize("name", FAMILIES)
def test_batched_generation_matches_one_at_a_time(adapters, name):
    """Left padding is right when a padded batch answers exactly as each request alone does."""
    adapter = adapters[name]
    batch = adapter.generate(requests(), max_new_tokens=6)
    alone = [adapter.generate([request], max_new_tokens=6)[0] for request in requests()]
    assert len(batch) == 3 and all(isinstance(text, str) for text in batch)
    assert batch == alone
    assert any(batch), "a tiny random model still emits some text"


@pytest.mark.parametrize("name", FAMILIES)
def test_adapter_loads_from_a_local_path_with_its_family(adapters, tiny_paths, name):
    adapter = adapters[name]
    assert adapter.model_type == {"tiny-paligemma2": "paligemma", "tiny-gemma3": "gemma3", "tiny-qwen2.5-vl": "qwen2_5_vl"}[name]
    assert adapter.processor.tokenizer.padding_side == "left"
    from_path = TransformersVLM(str(tiny_paths[name]))
    assert from_path.fingerprint == adapter.fingerprint, "same weights, same cache identity"
    assert from_path.generate(requests()[:1], max_new_tokens=4) == adapter.generate(requests()[:1], max_new_tokens=4)


def test_prompt_formats_per_family(adapters):
    pali = adapters["tiny-paligemma2"]
    assert isinstance(pali.prompt_format, PaliGemmaFormat)
    text = pali.prompt_format.text(pali.processor, requests()[0])
    assert text.endswith("answer en what colour is the car?") and "<image>" in text
    assert not pali.prompt_format.text(pali.processor, requests()[2]).count("answer en")
    gemma = adapters["tiny-gemma3"]
    chat = gemma.prompt_format.text(gemma.processor, requests()[0])
    assert "<start_of_turn>user" in chat and "single word or phrase" in chat and chat.rstrip().endswith("model")
    qwen = adapters["tiny-qwen2.5-vl"]
    assert "<|vision_start|>" in qwen.prompt_format.text(qwen.processor, requests()[0])
    assert prompt_format_for("llava") is prompt_format_for("unknown_family")


def test_seeds_give_different_models(tiny_paths):
    a, b = load_model("tiny-gemma3"), load_model("tiny-gemma3-seed1")
    assert a.fingerprint != b.fingerprint


def test_unknown_model_name_lists_what_to_pass(auditdm_home):
    with pytest.raises(UnknownModelError, match="not a registered name.*Hub id"):
        resolve("gemma-three")


def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(UnknownModelError, match="config.json"):
        resolve(str(tmp_path))


def test_hub_id_offline_gives_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="local path written by save_pretrained"):
        load_model("nobody-here/no-such-vlm")


def test_unknown_task_is_refused():
    with pytest.raises(ValueError, match="vqa"):
        GenerationRequest((), "hi", task="chat")
