"""The transformers backend over tiny random PaliGemma2, Gemma3 and Qwen2.5-VL checkpoints."""

import pytest

from conftest import photo
from dataclasses import replace

from model_adapters import (
    GenerationRequest, GenerationSettings, ModelLoadError, TransformersVLM, UnknownModelError, generate_samples, load_model,
    resolve,
)
from model_adapters.families import PaliGemmaFormat, prompt_format_for

FAMILIES = ["tiny-paligemma2", "tiny-gemma3", "tiny-qwen2.5-vl"]


@pytest.fixture(scope="module")
def adapters(tiny_paths):
    return {name: load_model(name, batch_size=4) for name in FAMILIES}


def requests(max_new_tokens=6):
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    return [
        GenerationRequest((photo(1, (64, 48)),), "what colour is the car?", settings=settings),
        GenerationRequest((photo(2, (40, 40)),), "how many animals are in this picture of the park today?", settings=settings),
        GenerationRequest((photo(3, (80, 32)),), "You are given an image. Generate a single question.", task="instruct", settings=settings),
    ]


def sampled(request, seed, temperature=1.0, top_p=1.0, max_new_tokens=8):
    return replace(request, settings=GenerationSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p), seed=seed)


@pytest.mark.parametrize("name", FAMILIES)
def test_batched_generation_matches_one_at_a_time(adapters, name):
    """Left padding is right when a padded batch answers exactly as each request alone does."""
    adapter = adapters[name]
    batch = adapter.generate(requests())
    alone = [adapter.generate([request])[0] for request in requests()]
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
    assert from_path.generate(requests(4)[:1]) == adapter.generate(requests(4)[:1])


@pytest.mark.parametrize("name", FAMILIES)
def test_sampling_follows_each_request_seed_whatever_the_batch(adapters, name):
    """A sampled request's text depends on its own seed only: alone or in a batch with other
    requests (greedy or sampled), the same; another seed, another text."""
    adapter = adapters[name]
    question = requests()[2]
    seeds = [11, 12, 13, 14, 15, 16]
    alone = [adapter.generate([sampled(question, seed)])[0] for seed in seeds]
    mixed_batch = [requests()[0], *[sampled(question, seed) for seed in seeds], requests()[1]]
    in_batch = adapter.generate(mixed_batch)
    assert in_batch[1:-1] == alone
    assert in_batch[0] == adapter.generate(requests()[:1])[0], "a greedy row beside sampled rows stays greedy"
    assert len(set(alone)) >= 4, f"six seeds gave only {len(set(alone))} distinct samples: {alone}"
    assert adapter.generate([sampled(question, 11)]) == alone[:1], "same seed, same sample"


def test_top_p_narrows_and_temperature_zero_is_greedy(adapters):
    adapter = adapters["tiny-gemma3"]
    question = requests()[2]
    greedy = adapter.generate([replace(question, settings=GenerationSettings(max_new_tokens=8))])[0]
    assert adapter.generate([sampled(question, 5, temperature=0.0)])[0] == greedy, "temperature 0 ignores the seed"
    nucleus = {adapter.generate([sampled(question, seed, top_p=1e-6)])[0] for seed in range(4)}
    assert nucleus == {greedy}, "a vanishing top-p leaves only the most likely token: greedy"


def test_num_samples_gives_distinct_seeded_samples(adapters):
    adapter = adapters["tiny-gemma3"]
    request = replace(requests()[2], settings=GenerationSettings(max_new_tokens=8, temperature=1.0, num_samples=4), seed=3)
    [samples] = generate_samples(adapter, [request])
    assert len(samples) == 4 and len(set(samples)) >= 3
    assert samples[0] == adapter.generate([sampled(requests()[2], 3)])[0], "sample 0 keeps the request's seed"
    with pytest.raises(ValueError, match="generate_samples"):
        adapter.generate([request])


def test_invalid_settings_name_the_field():
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1"):
        GenerationSettings(max_new_tokens=0)
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=1.5)


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


@pytest.mark.parametrize("name", FAMILIES)
def test_generated_text_never_holds_an_image_placeholder(tiny_paths, name):
    """trl's GRPOTrainer suppresses the image token while the auditor samples, so a trained auditor may
    rank it first; generation here suppresses it too. With its logit forced up, the text still reads
    (suppression off: every token generated is the placeholder, and the decoded text is empty)."""
    from model_adapters.transformers_backend import placeholder_token_ids

    adapter = TransformersVLM(str(tiny_paths[name]))
    placeholders = placeholder_token_ids(adapter.model.config)
    assert adapter.suppressed_tokens == placeholders and placeholders, "each family's image token is known"

    def favour_placeholders(module, inputs, logits):
        logits[..., placeholders] += 1e4
        return logits

    adapter.model.get_output_embeddings().register_forward_hook(favour_placeholders)
    asked = requests(4) + [sampled(requests()[0], seed=3, max_new_tokens=4)]  # greedy and sampled
    assert all(adapter.generate(asked)), "the placeholders are never generated"
    adapter.suppressed_tokens = []
    assert not any(adapter.generate(asked)), "without suppression the forced placeholders are all it writes"


@pytest.mark.parametrize(
    "name, image_tokens", [("gemma3-4b", 256), ("paligemma2-3b-448", 1024), ("qwen2.5-vl-7b", 256)]
)
def test_random_real_checkpoints_have_the_published_sizes(name, image_tokens):
    """The ``random-*`` models' configs are the published ones: parameter counts as on the model cards
    (built on the meta device: nothing allocated), and a 448 px photo becomes as many image tokens."""
    import torch

    from model_adapters import random_real

    model, processor, _ = random_real.parts(name, device="meta")
    architecture = random_real.REAL_ARCHITECTURES[name]
    parameters = sum(p.numel() for p in model.parameters())
    assert abs(parameters / architecture.published_parameters - 1) < 0.005, parameters
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    request = GenerationRequest((photo(4, (448, 448)),), "what is this?")
    inputs = processor(**prompt_format_for(model.config.model_type).processor_inputs(processor, [request]))
    image_token = model.config.image_token_id
    assert int((inputs["input_ids"] == image_token).sum()) == image_tokens


@pytest.mark.parametrize("family", ["gemma3", "paligemma2", "qwen2.5-vl"])
def test_random_real_checkpoints_write_exactly_max_new_tokens(tmp_path, monkeypatch, family):
    """Timings at real sizes compare only at fixed answer lengths: a ``random-*`` checkpoint never ends
    an answer early, even when its end token ranks first (a tiny checkpoint then ends at once)."""
    import torch

    from model_adapters import random_real, tiny

    small = random_real.RealArchitecture("org/small", family, tiny.TINY_SIZES[family], 0)
    monkeypatch.setitem(random_real.REAL_ARCHITECTURES, "small", small)
    fixed = TransformersVLM(str(random_real.ensure_random_real("small", tmp_path)))
    ordinary = TransformersVLM(str(tiny.ensure_tiny(f"tiny-{family}", tmp_path)))

    def lengths(adapter, max_new_tokens):
        ends = adapter.model.config.get_text_config().eos_token_id
        favour = adapter.model.get_output_embeddings().register_forward_hook(lambda m, i, logits: logits.index_add_(
            -1, torch.tensor(ends), torch.full((*logits.shape[:-1], len(ends)), 1e4)))
        inputs = adapter.processor(**adapter.prompt_format.processor_inputs(adapter.processor, requests(max_new_tokens)))
        new = adapter.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, suppress_tokens=adapter.suppressed_tokens)
        favour.remove()
        return (new[:, inputs["input_ids"].shape[1]:] != adapter.processor.tokenizer.pad_token_id).sum(-1).tolist()

    assert lengths(fixed, 5) == [5, 5, 5] and lengths(fixed, 2) == [2, 2, 2]
    assert lengths(ordinary, 5) == [1, 1, 1]
    assert fixed.generate(requests(3)) and fixed.suppressed_tokens == fixed.model.generation_config.eos_token_id


@pytest.mark.parametrize("family", ["gemma3", "paligemma2", "qwen2.5-vl"])
def test_random_real_checkpoints_carry_every_prompt_position_through_every_layer(tmp_path, monkeypatch, family):
    """A prompt token whose embedding is zero at position 0 (``<bos>``, ``<|im_start|>``: they attend only to
    themselves) keeps a hidden state of exactly zero through every layer, and every RMS norm then multiplies
    the gradient reaching it by 1/sqrt(eps): over Gemma3-4B's 34 layers the first GRPO step's gradient
    overflowed to NaN. The ``random-*`` builds draw every row a prompt reads, and no weight matrix is all zero."""
    import torch

    from model_adapters import random_real, tiny

    small = random_real.RealArchitecture("org/small", family, tiny.TINY_SIZES[family], 0)
    monkeypatch.setitem(random_real.REAL_ARCHITECTURES, "small", small)
    adapter = TransformersVLM(str(random_real.ensure_random_real("small", tmp_path)))
    embeddings = adapter.model.get_input_embeddings().weight
    assert all(bool(embeddings[i].any()) for i in random_real.prompt_token_ids(adapter.processor.tokenizer))
    assert not [name for name, p in adapter.model.named_parameters() if p.dim() == 2 and not bool(p.any())]
    inputs = adapter.processor(**adapter.prompt_format.processor_inputs(adapter.processor, requests()))
    with torch.no_grad():
        hidden_states = adapter.model(**inputs, output_hidden_states=True).hidden_states
    attended = inputs["attention_mask"].bool()
    for layer, hidden in enumerate(hidden_states[1:], start=1):
        assert bool((hidden.float().pow(2).sum(-1)[attended] > 0).all()), f"layer {layer} holds a zero row"


@pytest.mark.parametrize("name", FAMILIES)
def test_images_are_processed_on_the_models_device(adapters, name):
    """AutoProcessor loads each family's torchvision image processor, so the adapter asks for the pixels
    on the model's device (a GPU's, there); the answers are the ones processing elsewhere gives."""
    adapter = adapters[name]
    assert adapter.images_on_device
    on_device = adapter.generate(requests())
    adapter.images_on_device = False
    try:
        assert adapter.generate(requests()) == on_device
    finally:
        adapter.images_on_device = True
