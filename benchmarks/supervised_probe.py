"""What the auditor could learn, told the answer: supervised fine-tuning on exposing questions.

GRPO only ever hears the audit's verdict. This diagnostic asks how far the same warm-started auditor
gets when it is shown, for each training scene, a question that exposes the weakness (drawn from the
world's ground truth with ``exposing_questions``; scenes with none are skipped), and trained on it
with the warm start's own supervised loss. Greedy questions on a held-out pool are then scored
against the ground truth: the share of scenes whose question exposes the weakness. A GRPO run far
below that figure is held back by what reinforcement learning finds, not by what the model can
represent or see. It knows the weakness by construction: a measurement, never part of the auditor.

    python benchmarks/supervised_probe.py --weakness mirror --json benchmarks/results/supervised-probe-mirror.json
    python benchmarks/supervised_probe.py --weakness mirror --kind existence   # only one kind of question
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from common import machine  # a sibling module: this folder is on sys.path when it runs


def exposing(scene, weakness: str, kind: str | None) -> list[str]:
    from auditdm_eval.world import parse_question
    from auditdm_eval.world.models import exposing_questions

    found = exposing_questions(scene, weakness)
    return [q for q in found if kind is None or parse_question(q).qtype == kind]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weakness", default="mirror", help="a registered weakness or module:function")
    parser.add_argument("--auditor", default="world-auditor", help="the warm start (a model name or a checkpoint)")
    parser.add_argument("--kind", help="teach only questions of this type (existence, attribute_at_position, ...)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--every", type=int, default=200, help="measure on the held-out pool every this many steps")
    parser.add_argument("--pool", default="world:300:7", help="the held-out pool")
    parser.add_argument("--train-seed", type=int, default=1000, help="the world pool the warm start trained on")
    parser.add_argument("--train-scenes", type=int, default=4000, help="how many of that pool's scenes to teach from")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if min(args.steps, args.batch, args.every, args.train_scenes) < 1:
        parser.error("--steps, --batch, --every and --train-scenes must be at least 1")

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import auditdm_eval  # noqa: F401  (registers the world's model names)
    from auditdm_eval.prompts import PROMPT_VARIANTS
    from auditdm_eval.training.warm_start import supervised_batch
    from auditdm_eval.world import draw, parse_question, sample_scene
    from auditdm_eval.world.models import resolve_weakness
    from auditdm_eval.world.source import parse_world_spec
    from model_adapters import UnknownModelError, resolve

    try:
        resolve_weakness(args.weakness)
        count, seed, _ = parse_world_spec(args.pool)
    except ValueError as error:
        print(f"supervised_probe.py: {error}", file=sys.stderr)
        return 2
    try:
        path = resolve(args.auditor)[0]
    except UnknownModelError as error:
        print(f"supervised_probe.py: {error}", file=sys.stderr)
        return 1
    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(path)
    instruction = PROMPT_VARIANTS.build("auditdm").question
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    held_out = [sample_scene(seed, index) for index in range(count)]
    answers = [set(exposing(scene, args.weakness, None)) for scene in held_out]
    rng, known, taught = random.Random(0), {}, {}

    def lesson(index: int) -> tuple:
        if index not in taught:  # searching a scene's question space is the slow part: once per scene
            scene = sample_scene(args.train_seed, index)
            taught[index] = (scene, exposing(scene, args.weakness, args.kind))
        return taught[index]

    def batch():
        fulls, images = [], []
        while len(fulls) < args.batch:
            scene, found = lesson(rng.randrange(args.train_scenes))
            if found:
                fulls.append(prompt + rng.choice(found) + "<end_of_turn>")
                images.append([draw(scene)])
        return supervised_batch(processor, [prompt] * len(fulls), fulls, images, known)

    def measure() -> float:
        model.eval()
        processor.tokenizer.padding_side = "left"
        hits = 0
        for start in range(0, count, 50):
            scenes = held_out[start:start + 50]
            inputs = processor(text=[prompt] * len(scenes), images=[[draw(s)] for s in scenes], padding=True, return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=24, do_sample=False)
            texts = processor.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            for text, exposes in zip(texts, answers[start:start + 50]):
                query = parse_question(text)
                hits += query is not None and query.text() in exposes
        model.train()
        return hits / count

    curve = {"0": measure()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.0)
    started = time.perf_counter()
    model.train()
    with torch.enable_grad():
        for step in range(1, args.steps + 1):
            loss = model(**batch()).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            if step % args.every == 0 or step == args.steps:
                curve[str(step)] = measure()
                print(f"step {step}: loss {loss.item():.3f}, held-out scenes exposed {100 * curve[str(step)]:.1f}%", flush=True)
    result = {
        "machine": machine(), "weakness": args.weakness, "auditor": args.auditor, "kind": args.kind, "pool": args.pool,
        "steps": args.steps, "batch": args.batch, "learning_rate": args.learning_rate, "train_scenes": args.train_scenes,
        "train_seconds": round(time.perf_counter() - started, 1),
        "scene_aware_ceiling": sum(map(bool, answers)) / count,
        "ceiling_of_the_kind": None if args.kind is None else sum(any(parse_question(q).qtype == args.kind for q in found) for found in answers) / count,
        "held_out_success_by_step": curve,
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
