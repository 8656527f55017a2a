"""Measured facts about the world: ``python -m auditdm_eval.world.stats [--scenes N] [--seed S] [--json out.json]``.

For a pool of sampled scenes: the size of the question space, the share of scenes in which some
question exposes each built-in weakness (the scene-aware ceiling of an audit with questions on
original images) and the share of the question space that does, decode accuracy (also after PNG
and JPEG round trips), noisy oracles' error rates and how often they agree on wrong answers, and
how long drawing, decoding and answering take per image.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from collections import Counter
from typing import Any

import numpy as np
from PIL import Image

from .decode import decode
from .draw import draw
from .language import answer_question, edit_space, parse_question, question_space
from .models import BUILTIN_WEAKNESSES, WorldModel, exposing_questions, model_kwargs
from .scene import sample_scenes


def _round_trip(image: Image.Image, fmt: str, **kwargs: Any) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def measure(n_scenes: int = 500, seed: int = 0, questions_per_scene: int = 10) -> dict[str, Any]:
    scenes = sample_scenes(n_scenes, seed)
    out: dict[str, Any] = {"scenes": n_scenes, "seed": seed}

    started = time.perf_counter()
    spaces = [question_space(scene) for scene in scenes]
    out["question_space_ms_per_scene"] = 1e3 * (time.perf_counter() - started) / n_scenes
    sizes = [len(space) for space in spaces]
    types = Counter(parse_question(q).qtype for space in spaces for q in space)  # type: ignore[union-attr]
    out["question_space"] = {
        "mean": float(np.mean(sizes)), "min": min(sizes), "median": float(np.median(sizes)), "max": max(sizes),
        "per_type_mean": {t: n / n_scenes for t, n in types.items()},
    }
    out["objects_per_scene"] = float(np.mean([len(s) for s in scenes]))
    out["share_with_3plus_same_color"] = float(np.mean([max(Counter(o.color for o in s).values()) >= 3 for s in scenes]))
    out["share_with_3plus_same_shape"] = float(np.mean([max(Counter(o.shape for o in s).values()) >= 3 for s in scenes]))
    out["share_with_3plus_of_a_kind"] = float(np.mean([
        max(Counter(o.color for o in s).values()) >= 3 or max(Counter(o.shape for o in s).values()) >= 3 for s in scenes
    ]))
    out["edit_space_mean"] = float(np.mean([len(edit_space(s)) for s in scenes[:100]]))
    out["share_with_clock"] = float(np.mean([any(o.shape == "clock" for o in s) for s in scenes]))
    out["share_with_sign"] = float(np.mean([any(o.shape == "sign" for o in s) for s in scenes]))

    weaknesses = {}
    for name in BUILTIN_WEAKNESSES:
        exposing = [exposing_questions(scene, name, space) for scene, space in zip(scenes, spaces)]
        weaknesses[name] = {
            "share_of_scenes_exposable": float(np.mean([bool(e) for e in exposing])),
            "share_of_question_space_exposing": float(np.mean([len(e) / len(s) for e, s in zip(exposing, spaces)])),
            "exposing_types": dict(Counter(parse_question(q).qtype for e in exposing for q in e)),  # type: ignore[union-attr]
        }
    out["weaknesses"] = weaknesses

    started = time.perf_counter()
    images = [draw(scene) for scene in scenes]
    out["draw_ms_per_image"] = 1e3 * (time.perf_counter() - started) / n_scenes
    started = time.perf_counter()
    decoded = [decode(image) for image in images]
    out["decode_ms_per_image"] = 1e3 * (time.perf_counter() - started) / n_scenes
    out["decode_accuracy"] = float(np.mean([d == s for d, s in zip(decoded, scenes)]))
    out["decode_accuracy_png"] = float(np.mean([decode(_round_trip(i, "PNG")) == s for i, s in zip(images, scenes)]))
    out["decode_accuracy_jpeg_q90"] = float(np.mean([decode(_round_trip(i, "JPEG", quality=90)) == s for i, s in zip(images, scenes)]))
    out["decode_accuracy_sizes"] = {
        str(size): float(np.mean([decode(draw(s, size)) == s for s in scenes[:100]])) for size in (48, 60, 150, 192, 384)
    }

    rng = random.Random(seed)
    items = [(scene, image, q) for scene, image, space in zip(scenes, images, spaces) for q in rng.sample(space, min(questions_per_scene, len(space)))]
    truths = [answer_question(q, scene) for scene, _, q in items]
    oracle = WorldModel("world-oracle")
    started = time.perf_counter()
    answers = [oracle.answer(image, q) for _, image, q in items]
    out["oracle_answer_ms_per_request"] = 1e3 * (time.perf_counter() - started) / len(items)
    out["oracle_accuracy"] = float(np.mean([a == t for a, t in zip(answers, truths)]))
    started = time.perf_counter()
    for scene, _, q in items:
        oracle.answer_scene(scene, q)
    out["answer_from_scene_ms_per_request"] = 1e3 * (time.perf_counter() - started) / len(items)
    noisy: dict[str, list[str]] = {}
    rates = {}
    for name, (kwargs, _) in model_kwargs().items():
        if "noise" not in kwargs:
            continue
        model = WorldModel(name, **kwargs)
        noisy[name] = [model.answer_scene(scene, q) for scene, _, q in items]
        rates[name] = float(np.mean([a != t for a, t in zip(noisy[name], truths)]))
    out["error_rates"] = rates
    for family in ("noisy", "correlated"):
        a, b, c = (noisy[f"world-oracle-{family}-{x}"] for x in "abc")
        out[f"{family}_pair_same_wrong"] = float(np.mean([x == y != t for x, y, t in zip(a, b, truths)]))
        majority_wrong = []
        for x, y, z, t in zip(a, b, c, truths):
            top, votes = Counter([x, y, z]).most_common(1)[0]
            majority_wrong.append(votes >= 2 and top != t)
        out[f"{family}_majority_wrong"] = float(np.mean(majority_wrong))
    out["answered_items"] = len(items)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    figures = measure(args.scenes, args.seed)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
