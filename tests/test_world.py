"""The planted-weakness world: scenes, pixels, language, models, renderers, ground truth."""

from __future__ import annotations

import io
import random
import shutil
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from auditdm_eval.matching import normalize_answer
from auditdm_eval.world import (
    ANSWER_SPACES,
    QUESTION_TYPES,
    WORLD_VOCABULARY,
    Scene,
    SceneObject,
    WorldEditRenderer,
    WorldModel,
    WorldRegenerateRenderer,
    answer,
    answer_question,
    apply_edit,
    caption_to_scene,
    decode,
    describe,
    draw,
    edit_space,
    exposing_questions,
    ground_truth,
    parse_caption,
    parse_edit,
    parse_question,
    query_space,
    question_space,
    register,
    register_weakness,
    sample_scene,
    sample_scenes,
    tokenize,
    world_source,
)
from auditdm_eval.world.draw import MIN_SIZE
from auditdm_eval.world.models import model_kwargs

SCENES = sample_scenes(300, seed=11)


def png_round_trip(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return Image.open(buffer)


def scene(*objects: tuple) -> Scene:
    return Scene(tuple(SceneObject(*o) for o in objects))


def vqa(image: Image.Image, question: str, task: str = "vqa"):
    from model_adapters import GenerationRequest

    return GenerationRequest(images=(image,), prompt=question, task=task)


# ----------------------------------------------------------------------------------------- scenes


def test_scene_json_round_trip_and_validation():
    for s in SCENES[:50]:
        assert Scene.from_json(s.to_json()) == s
        assert Scene.from_dict(s.to_dict()) == s
    with pytest.raises(ValueError, match="one object per cell"):
        scene(("red", "circle", "small", 0, 0), ("blue", "square", "large", 0, 0))
    with pytest.raises(ValueError, match="color 'pink'"):
        SceneObject("pink", "circle", "small", 0, 0)
    with pytest.raises(ValueError, match="only a clock"):
        SceneObject("red", "circle", "small", 0, 0, hour=3)


def test_sampler_is_seeded_varied_and_natural():
    assert sample_scenes(20, seed=3) == sample_scenes(20, seed=3)
    assert sample_scenes(20, seed=3) != sample_scenes(20, seed=4)
    many = sample_scenes(600, seed=0)
    sizes = Counter(len(s) for s in many)
    assert set(sizes) == set(range(2, 8))
    repeated = np.mean([max(Counter(o.color for o in s).values()) >= 3 or max(Counter(o.shape for o in s).values()) >= 3 for s in many])
    assert repeated > 0.3, "three or more of a kind must occur in a good share of scenes"
    colors = Counter(o.color for s in many for o in s)
    assert min(colors.values()) > 0.6 * max(colors.values()), "colours are drawn uniformly"
    assert any(o.shape == "clock" for s in many for o in s) and any(o.shape == "sign" for s in many for o in s)


# ---------------------------------------------------------------------------------- draw / decode


def test_draw_decode_round_trip_on_hundreds_of_scenes_and_after_png():
    for s in SCENES:
        image = draw(s)
        assert image.mode == "RGB" and image.size == (96, 96)
        assert decode(image) == s
        assert decode(png_round_trip(image)) == s


@pytest.mark.parametrize("size", [MIN_SIZE, 51, 60, 99, 150, 225, 300])
def test_decode_at_any_grid_multiple_size(size):
    for s in SCENES[:40]:
        assert decode(draw(s, size)) == s


def test_every_object_draws_distinctly_at_every_grid_size():
    """Decoding is exact wherever no two objects draw alike: check every multiple of 3 up to 240 px."""
    from auditdm_eval.world.decode import check_decodable

    for side in range(MIN_SIZE, 241, 3):
        check_decodable(side)


def test_drawing_is_deterministic_and_decoding_needs_no_shared_state():
    a = np.asarray(draw(SCENES[0]))
    assert np.array_equal(a, np.asarray(draw(SCENES[0])))
    from auditdm_eval.world import decode as decode_module
    from auditdm_eval.world.decode import _templates

    _templates.cache_clear()  # as in a fresh process
    assert decode_module(Image.fromarray(a)) == SCENES[0]


def test_decode_rejects_images_that_are_no_world_scene():
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    assert decode(noise) is None
    yy, xx = np.mgrid[0:96, 0:96]
    gradient = Image.fromarray(np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.uint8))
    assert decode(gradient) is None
    blob = np.full((96, 96, 3), 255, np.uint8)
    blob[5:20, 40:90] = (220, 30, 30)  # a red bar across two cells: no object draws like that
    assert decode(Image.fromarray(blob)) is None
    assert decode(Image.new("RGB", (20, 20), "white")) is None
    assert decode(Image.new("RGB", (96, 96), "white")) == Scene()


# ----------------------------------------------------------------------------------------- language


def test_every_question_parses_back_and_has_an_answer():
    for s in SCENES[:100]:
        for query in query_space(s):
            text = query.text()
            assert parse_question(text) == query, text
            assert answer(query, s) is not None, text


def test_question_space_covers_every_type_and_refers_uniquely():
    seen = Counter()
    for s in SCENES[:100]:
        for query in query_space(s):
            seen[query.qtype] += 1
    assert set(seen) == set(QUESTION_TYPES)
    s = scene(("red", "circle", "small", 0, 0), ("red", "circle", "large", 0, 2), ("blue", "square", "large", 2, 1))
    space = question_space(s)
    assert "what size is the red circle?" not in space, "two red circles: the description picks out neither"
    assert answer_question("what size is the red circle?", s) is None
    assert "what size is the circle in the top left?" not in space  # canonical position questions use 'object'
    assert answer_question("what size is the object in the top left?", s) == "small"
    assert answer_question("is the small circle to the left of the large circle?", s) == "yes"
    assert answer_question("is the blue square above the small circle?", s) == "no"
    assert answer_question("how many red circles are there?", s) == "2"
    assert answer_question("how many green objects are there?", s) == "0"
    assert answer_question("is there a blue square?", s) == "yes"
    assert answer_question("where is the blue object?", s) == "bottom center"
    assert answer_question("what color is the object in the center?", s) is None


def test_answers_are_canonical_and_survive_normalisation():
    for s in SCENES[:60]:
        for query in query_space(s):
            truth = answer(query, s)
            assert truth in ANSWER_SPACES[query.answer_kind]
            assert normalize_answer(truth) == truth, truth
    for space in ANSWER_SPACES.values():
        assert len({normalize_answer(a) for a in space}) == len(space)


def test_questions_are_read_leniently():
    s = scene(("red", "clock", "large", 0, 0, 3), ("yellow", "sign", "large", 1, 1, None, "stop"), ("green", "triangle", "small", 2, 2))
    assert answer_question("What colour is the triangle?", s) == "green"
    assert answer_question("What is the color of the object in the upper left corner?", s) == "red"
    assert answer_question("answer en how many objects are in the image?", s) == "3"
    assert answer_question("Question: What time does the clock show?\nAnswer:", s) == "3"
    assert answer_question("what does the sign say?", s) == "stop"
    assert answer_question("what word is on the yellow sign?", s) == "stop"
    assert answer_question("Is the clock left of the triangle?", s) == "yes"
    assert answer_question("is there any purple thing?", s) == "no"
    assert parse_question("who painted this?") is None
    assert answer_question("what hour does the triangle show?", s) is None


def test_captions_round_trip_and_are_read_leniently():
    for s in SCENES:
        assert parse_caption(describe(s)) == s
    s = caption_to_scene("An image with a circle that is red at the left top and a big blue square in the centre.", seed=0)
    assert s.at(0, 0).color == "red" and s.at(0, 0).shape == "circle"
    assert s.at(1, 1) == SceneObject("blue", "square", "large", 1, 1)
    three = caption_to_scene("three green triangles", seed=5)
    assert len(three) == 3 and all(o.color == "green" and o.shape == "triangle" for o in three)
    assert caption_to_scene("three green triangles", seed=5) == three, "filled from the seed, deterministically"
    assert caption_to_scene("a red clock at 7 o'clock in the bottom left", seed=0).at(2, 0).hour == 7
    pronouns = caption_to_scene("a red one in the center and a blue one", seed=2)
    assert len(pronouns) == 2 and pronouns.at(1, 1).color == "red"
    assert describe(Scene()) == "nothing" and caption_to_scene("nothing") == Scene()


def test_edits_parse_apply_and_round_trip():
    for s in SCENES[:40]:
        for command in edit_space(s):
            edit = parse_edit(command)
            assert edit is not None and edit.text() == command
            assert apply_edit(s, edit, seed=1) != s or edit.action == "shape"
    s = scene(("red", "circle", "small", 0, 0), ("blue", "clock", "large", 1, 1, 4))
    assert apply_edit(s, parse_edit("make the red circle green")).at(0, 0).color == "green"
    assert apply_edit(s, parse_edit("please change the colour of the circle to purple")).at(0, 0).color == "purple"
    assert apply_edit(s, parse_edit("turn the circle into a triangle")).at(0, 0).shape == "triangle"
    assert apply_edit(s, parse_edit("make the circle bigger")).at(0, 0).size == "large"
    assert apply_edit(s, parse_edit("move the red circle to the bottom right")).at(2, 2).color == "red"
    assert len(apply_edit(s, parse_edit("remove the clock"))) == 1
    assert apply_edit(s, parse_edit("set the clock to 9 o'clock")).at(1, 1).hour == 9
    added = apply_edit(s, parse_edit("add a small orange square in the top right"))
    assert added.at(0, 2) == SceneObject("orange", "square", "small", 0, 2)
    turned = apply_edit(s, parse_edit("turn the circle into a sign"), seed=3)
    assert turned.at(0, 0).shape == "sign" and turned.at(0, 0).size == "large" and turned.at(0, 0).word


def test_vocabulary_covers_every_generated_text():
    vocabulary = set(WORLD_VOCABULARY)
    for s in SCENES[:60]:
        for text in question_space(s) + edit_space(s) + [describe(s)]:
            assert set(tokenize(text)) <= vocabulary, text
        for query in query_space(s):
            assert set(tokenize(answer(query, s))) <= vocabulary


# ------------------------------------------------------------------------------------------- models


def test_oracle_equals_answer_from_pixels():
    oracle = WorldModel("world-oracle")
    rng = random.Random(0)
    for s in SCENES[:60]:
        image = png_round_trip(draw(s))
        questions = rng.sample(question_space(s), 15)
        assert oracle.generate([vqa(image, q) for q in questions]) == [answer_question(q, s) for q in questions]


def test_no_answer_for_instructions_foreign_images_and_questions_that_do_not_apply():
    oracle = WorldModel("world-oracle")
    s = scene(("red", "circle", "small", 0, 0), ("red", "circle", "large", 0, 2))
    image = draw(s)
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8))
    out = oracle.generate([
        vqa(image, "what color is the circle?", task="instruct"),
        vqa(photo, "how many objects are there?"),
        vqa(image, "what is the meaning of life?"),
        vqa(image, "what size is the red circle?"),  # two red circles
        vqa(image, "how many objects are there?"),
    ])
    assert out == ["", "", "", "", "2"]


def _differences(weakness: str, scenes) -> list[tuple[Scene, str, str, str]]:
    target = WorldModel(f"world-target-{weakness}", weakness=weakness)
    found = []
    for s in scenes:
        for q in question_space(s):
            truth, given = answer_question(q, s), target.answer_scene(s, q)
            if given != truth:
                found.append((s, q, truth, given))
    return found


def test_mirror_changes_left_right_answers_only():
    found = _differences("mirror", SCENES[:40])
    assert found
    types = Counter(parse_question(q).qtype for _, q, _, _ in found)
    assert types["relation"] and types["position"]
    assert set(types) <= {"relation", "position", "attribute_at_position", "existence"}
    for s, q, truth, given in found:
        query = parse_question(q)
        if query.qtype == "relation":
            assert query.relation in ("left", "right")
        if query.qtype == "position":
            assert truth.split()[-1] in ("left", "right") and given.split()[-1] in ("left", "right")
        if query.qtype in ("attribute_at_position", "existence"):
            assert query.ref.cell is not None and query.ref.cell[1] != 1


def test_redgreen_changes_only_what_involves_red_or_green():
    found = _differences("redgreen", SCENES[:40])
    assert {parse_question(q).qtype for _, q, _, _ in found} >= {"color", "count", "existence"}
    for s, q, truth, given in found:
        assert {"red", "green"} & (set(tokenize(q)) | {truth}), q
        if parse_question(q).qtype in ("color", "attribute_at_position") and truth in ("red", "green"):
            assert given == {"red": "green", "green": "red"}[truth]
    s = scene(("blue", "circle", "small", 0, 0), ("yellow", "square", "large", 1, 1))
    assert not exposing_questions(s, "redgreen"), "no red or green object: nothing to expose"


def test_undercount_changes_counts_of_three_and_more_only():
    found = _differences("undercount", SCENES[:40])
    assert found
    for _, q, truth, given in found:
        assert parse_question(q).qtype == "count" and int(truth) >= 3 and int(given) == int(truth) - 1
    target = WorldModel("t", weakness="undercount")
    for s in SCENES[:40]:
        for q in question_space(s):
            if parse_question(q).qtype == "count" and int(answer_question(q, s)) >= 3:
                assert target.answer_scene(s, q) != answer_question(q, s)


def test_control_target_has_nothing_to_find():
    assert not _differences("none", SCENES[:30])


def test_noisy_oracles_err_at_their_rate_reproducibly():
    rng = random.Random(2)
    items = [(s, q) for s in SCENES for q in rng.sample(question_space(s), 8)]
    truths = [answer_question(q, s) for s, q in items]
    kwargs = model_kwargs()
    answers = {}
    for name in ("world-oracle-noisy-a", "world-oracle-noisy-b", "world-oracle-noisy-c",
                 "world-oracle-correlated-a", "world-oracle-correlated-b", "world-oracle-correlated-c"):
        model = WorldModel(name, **kwargs[name][0])
        answers[name] = [model.answer_scene(s, q) for s, q in items]
        rate = np.mean([a != t for a, t in zip(answers[name], truths)])
        assert 0.08 <= rate <= 0.12, (name, rate)
        again = WorldModel(name, **kwargs[name][0])
        assert [again.answer_scene(s, q) for s, q in items[:300]] == answers[name][:300]
        for (s, q), a in zip(items, answers[name]):
            if a != answer_question(q, s):
                assert a in ANSWER_SPACES[parse_question(q).answer_kind]

    def same_wrong(family: str) -> float:
        a, b = answers[f"world-oracle-{family}-a"], answers[f"world-oracle-{family}-b"]
        return float(np.mean([x == y != t for x, y, t in zip(a, b, truths)]))

    independent, correlated = same_wrong("noisy"), same_wrong("correlated")
    assert correlated > 4 * independent and correlated > 0.04, (independent, correlated)


def test_fingerprints_differ_where_answers_can_differ():
    register()
    from model_adapters import load_model

    names = [name for name in model_kwargs() if name != "world-target-none"]
    prints = {load_model(name).fingerprint for name in names}
    assert len(prints) == len(names)
    # the control answers exactly as the oracle does: one fingerprint, one cache
    assert load_model("world-target-none").fingerprint == load_model("world-oracle").fingerprint
    assert load_model("world-oracle").fingerprint == load_model("world-oracle").fingerprint
    assert load_model("world-oracle-noisy:0.2:1").fingerprint != load_model("world-oracle-noisy-a").fingerprint
    assert load_model("world-oracle-noisy:0.1:1").fingerprint == load_model("world-oracle-noisy-a").fingerprint


def test_the_code_hash_follows_what_decides_answers_and_drawings(tmp_path):
    from auditdm_eval.world import models

    copy = tmp_path / "world"
    shutil.copytree(Path(models.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert models.source_hash(copy) == models.world_code_hash()
    for module in models.UNHASHED_MODULES:  # registration, re-exports, the stats script: caches and warm starts stay
        (copy / module).write_text((copy / module).read_text() + "\n# edited\n")
    assert models.source_hash(copy) == models.world_code_hash()
    (copy / "language.py").write_text((copy / "language.py").read_text() + "\n# edited\n")
    edited = models.source_hash(copy)
    assert edited != models.world_code_hash()
    (copy / "more_rules.py").write_text("RULE = 1\n")  # a new module is hashed unless listed as unhashed
    assert models.source_hash(copy) != edited


def test_registered_models_load_through_model_adapters():
    info = register()
    assert register()["models"] == info["models"], "idempotent"
    from model_adapters import load_model

    s = scene(("red", "circle", "large", 0, 0), ("green", "square", "small", 1, 2), ("blue", "circle", "small", 2, 1))
    image = draw(s)
    questions = ["what color is the square?", "where is the red object?", "how many circles are there?"]
    requests = [vqa(image, q) for q in questions]
    expected = {
        "world-oracle": ["green", "top left", "2"],
        "world-target-redgreen": ["red", "middle right", "2"],
        "world-target-mirror": ["green", "top right", "2"],
        "world-target-none": ["green", "top left", "2"],
    }
    for name, answers in expected.items():
        model = load_model(name, dtype="auto", device="cpu", batch_size=4, trust_remote_code=False)
        assert model.model_id == name
        assert model.generate(requests) == answers


def test_user_weakness_from_module_function_and_registered_name(tmp_path, monkeypatch):
    package = tmp_path / "weakpkg_world_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "weak.py").write_text(textwrap.dedent('''
        def squares_as_circles(scene, question, true_answer):
            """Calls every square a circle."""
            return "circle" if true_answer == "square" else None
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    register()
    from model_adapters import load_model
    from model_adapters.registry import UnknownModelError

    s = scene(("red", "square", "large", 0, 0), ("blue", "triangle", "small", 1, 1))
    image = draw(s)
    model = load_model("world-target:weakpkg_world_test.weak:squares_as_circles")
    assert model.generate([vqa(image, "what shape is the red object?"), vqa(image, "what shape is the blue object?")]) == ["circle", "triangle"]
    assert exposing_questions(s, "weakpkg_world_test.weak:squares_as_circles")

    register_weakness("always-yes", lambda scene, question, truth: "yes" if truth in ("yes", "no") else None)
    named = load_model("world-target:always-yes")
    assert named.generate([vqa(image, "is there a green object?")]) == ["yes"]
    assert named.fingerprint != model.fingerprint
    with pytest.raises(UnknownModelError, match="no 'missing'"):
        load_model("world-target:weakpkg_world_test.weak:missing")
    with pytest.raises(UnknownModelError, match="unknown weakness"):
        load_model("world-target:no-such-weakness")


# ---------------------------------------------------------------------------------------- renderers


def test_regenerate_renderer_draws_what_the_caption_says():
    renderer = WorldRegenerateRenderer()
    oracle = WorldModel("world-oracle")
    captions = [describe(s) for s in SCENES[:30]]
    images = renderer.render([None] * len(captions), captions, list(range(len(captions))))
    for s, image in zip(SCENES[:30], images):
        assert decode(image) == s
        q = question_space(s)[0]
        assert oracle.answer(image, q) == answer_question(q, s)
    partial = renderer.render([None, None], ["a red circle and a blue square"] * 2, [1, 1])
    assert np.array_equal(np.asarray(partial[0]), np.asarray(partial[1])), "what is left out comes from the seed"
    assert sorted(o.color for o in decode(partial[0])) == ["blue", "red"]
    assert renderer.renderer_id == "world-regenerate" and renderer.fingerprint


def test_edit_renderer_applies_commands_to_the_decoded_source():
    renderer = WorldEditRenderer()
    for s in SCENES[:15]:
        source = draw(s)
        commands = edit_space(s)[::7]
        images = renderer.render([source] * len(commands), commands, [0] * len(commands))
        for command, image in zip(commands, images):
            assert decode(image) == apply_edit(s, parse_edit(command), seed=0)
            assert image.size == source.size


def test_renderers_raise_value_errors_naming_the_problem():
    regenerate, edit = WorldRegenerateRenderer(), WorldEditRenderer()
    with pytest.raises(ValueError, match="names no object.*e.g."):
        regenerate.render([None], ["a beautiful sunset over the sea"], [0])
    with pytest.raises(ValueError, match="top left.*one object per cell"):
        regenerate.render([None], ["a red circle in the top left, a blue square in the top left"], [0])
    with pytest.raises(ValueError, match="do not fit"):
        regenerate.render([None], ["ten red circles"], [0])
    s = scene(("red", "circle", "small", 0, 0), ("red", "square", "large", 1, 1))
    source = draw(s)
    with pytest.raises(ValueError, match="cannot read the edit command.*make the red circle blue"):
        edit.render([source], ["do a barrel roll"], [0])
    with pytest.raises(ValueError, match="no object is the green circle"):
        edit.render([source], ["remove the green circle"], [0])
    with pytest.raises(ValueError, match="2 objects are the red object"):
        edit.render([source], ["make the red object blue"], [0])
    with pytest.raises(ValueError, match="center already holds"):
        edit.render([source], ["move the circle to the center"], [0])
    with pytest.raises(ValueError, match="not a clock"):
        edit.render([source], ["make the circle show 5"], [0])
    with pytest.raises(ValueError, match="not a world scene"):
        edit.render([Image.new("RGB", (96, 96), "gray")], ["remove the circle"], [0])


# --------------------------------------------------------------------------------- source and truth


def test_world_source_yields_scenes_with_a_valid_question():
    from auditdm_eval.sources import SourceOptions

    items = list(world_source("world:12", SourceOptions()))
    assert len(items) == 12 and len({i.source_id for i in items}) == 12
    again = list(world_source("world:12:0", SourceOptions(limit=5)))
    assert [i.source_id for i in again] == [i.source_id for i in items[:5]]
    assert all(np.array_equal(np.asarray(a.image), np.asarray(b.image)) for a, b in zip(items, again))
    held_out = list(world_source("world:12:7", SourceOptions()))
    assert [i.extra["scene"] for i in held_out] != [i.extra["scene"] for i in items]
    types = set()
    for item in items + held_out:
        s = Scene.from_dict(item.extra["scene"])
        assert decode(item.image) == s
        assert item.question in question_space(s)
        assert item.answer == answer_question(item.question, s)
        types.add(parse_question(item.question).qtype)
    assert len(types) >= 4, "seed questions are spread over the question types"
    with pytest.raises(ValueError, match="world:<number of scenes>"):
        list(world_source("world:many", SourceOptions()))


def test_ground_truth_is_read_from_pixels():
    s = sample_scene(0, 5)
    image = draw(s)
    q = question_space(s)[3]
    truth = ground_truth(image, q)
    assert truth["scene"] == s.to_dict() and truth["answer"] == answer_question(q, s)
    assert truth["question_type"] == parse_question(q).qtype and truth["failure_type"]
    import json

    json.dumps(truth)
    assert ground_truth(image, "what is the meaning of life?")["answer"] is None
    assert ground_truth(Image.new("RGB", (96, 96), "gray"), q) == {
        "scene": None, "answer": None, "question_type": truth["question_type"],
        "answer_kind": truth["answer_kind"], "failure_type": truth["failure_type"],
    }
