"""The world auditor: a tiny Gemma3 VLM warm-started to see the world's scenes and to write its
questions, captions and edit commands, so that GRPO has a policy worth shaping.

A random tiny VLM neither sees nor writes. The warm start teaches, by supervised training on
scenes drawn from the world (a pool the held-out pools never use):

1. vision first: "Describe the image." -> the 3x3 grid, cell by cell in reading order ("top left:
   large red circle, top center: nothing, ..."), so that each slot of the answer reads one image token
   (a 48 px image in 16 px patches: one patch per cell) and the features of colour, shape and size form;
   and "What is in the bottom left?" -> "large red circle" (or "nothing"), which finds the image token
   by the position's words rather than by counting slots: what answering and asking about "the object
   in the bottom left" needs;
2. then writing, with the auditor's own instructions (the paper's p_q, p_c, p_e and the prompt-
   engineering baseline's, equally often): a valid question about the scene (a question type
   uniformly, then a question of that type), a caption of the scene with one small alteration, and
   an edit command, in the world's language; and answering the world's questions (the question as
   the instruction, the true answer as the text), which binds "the object in the middle left" or
   "the red circle" to what the image shows there, as the paper's auditor, a capable VLM, can.

Nothing here knows which weakness a target has: the auditor learns to see and to ask, and GRPO
(:mod:`.grpo`) learns what to ask. A warm start lives under ``$AUDITDM_HOME/tiny/``
(``world-auditor-<key>``), with the validation figures it reached and what it was built with in
``warm_start.json``, and loads through ``model_adapters`` like any checkpoint. A warm start with
``start_from`` continues another registered one instead of a random initialisation (its key follows
the base's). The package ships the default one and the continued ones (``shipped/``, 1.3 MB each), so that
every machine audits with the same validated weights: a build's weights follow the CPU's float kernels
(see :mod:`auditdm_eval.kernels`) and take a quarter of an hour on 2 cores. Any other settings, or these
after the world's code changed, are built once on first use.
``python -m auditdm_eval.training.warm_start ship <name>`` rebuilds a shipped copy.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..cache import content_key
from ..kernels import portable_kernels
from ..prompts import PROMPT_VARIANTS, AuditorPrompts
from ..stages.auditor import REASONING_END, REASONING_START, clean_auditor_text

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

WARM_START_VERSION = 5  # 5: built with kernels.PORTABLE_KERNELS
SHIPPED = Path(__file__).parent / "shipped"
MODULE = "auditdm_eval.training.warm_start"  # its importable name, also when run with ``python -m``
DESCRIBE = "Describe the image."
QUESTION_TOKENS = 48  # room for a question led by a reasoning block (looked_question)
GRID = ("top left", "top center", "top right", "middle left", "center", "middle right", "bottom left", "bottom center", "bottom right")
TaskMix = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class WarmStartSettings:
    image_size: int = 48  # the processor's size: 3x3 patches of patch_size, one per grid cell
    patch_size: int = 16
    hidden_size: int = 96
    layers: int = 2
    vision_hidden_size: int = 64
    vision_steps: int = 1200  # describing and looking up cells
    writing_steps: int = 1600  # all tasks
    batch_size: int = 32
    learning_rate: float = 2e-3
    vision_learning_rate: float = 5e-3
    vision_mix: TaskMix = (("describe", 1.0),)
    writing_mix: TaskMix = (("describe", 0.1), ("lookup", 0.15), ("answer", 0.25), ("question", 0.2), ("caption", 0.15), ("edit", 0.15))
    pool_seed: int = 1000  # the world pool the warm start trains on
    seed: int = 0
    start_from: str | None = None  # a registered warm start to continue (None: a random initialisation)
    threads: int | None = field(default=None, compare=False)  # torch threads while training (None: torch's default)

    def key(self) -> str:
        from ..world.models import world_code_hash

        settings = {k: v for k, v in asdict(self).items() if k != "threads"}
        parts: dict[str, Any] = {"settings": settings, "world": world_code_hash(), "version": WARM_START_VERSION}
        if self.start_from is None:  # keys of warm starts built from scratch stay as they were before start_from
            del settings["start_from"]
        else:
            parts["base"] = self.base().key()  # a changed base is a changed warm start
        return content_key(**parts)[:12]

    def base(self) -> WarmStartSettings:
        if self.start_from not in WARM_STARTS:
            raise KeyError(f"start_from={self.start_from!r} names no registered warm start; choose one of: {', '.join(WARM_STARTS)}")
        return WARM_STARTS[self.start_from][0]


def question_practice(start_from: str, task: str, writing_steps: int, seed: int) -> WarmStartSettings:
    """A continuation of ``start_from`` whose writing phase gives half of its examples to the question task
    ``task`` and keeps the other skills in practice (typed questions, answers, grids, lookups, captions, edits)."""
    return WarmStartSettings(
        start_from=start_from, vision_steps=0, writing_steps=writing_steps, learning_rate=1e-3, vision_learning_rate=1e-3,
        writing_mix=(("describe", 0.1), ("lookup", 0.1), ("answer", 0.1), (task, 0.5), ("question", 0.1), ("caption", 0.05), ("edit", 0.05)),
        seed=seed,
    )


# The registered warm-started auditors: model name -> (settings, description). The large one sees
# better where measured (a named cell looked up 85% of the time against 57%; one build, the figure
# moves with the machine: see build_environment) at about 3.4x the build time. The sighted one continues
# the shipped default rather than starting afresh: a build from random weights was a lottery (one looked
# cells up 93% of the time, a rebuild of the same settings 59% and described 17% of objects right), a
# continuation keeps what the default learnt and practises lookups and questions (see the README). The
# grounded one practises questions that name an object of the image, every question type alike; the
# looking ones write such a question after a reasoning block that reads the object's cell first.
WARM_STARTS: dict[str, tuple[WarmStartSettings, str]] = {
    "world-auditor": (
        WarmStartSettings(),
        "tiny Gemma3 auditor warm-started on the planted-weakness world (shipped with the package)",
    ),
    "world-auditor-large": (
        WarmStartSettings(hidden_size=128, layers=3, vision_hidden_size=96, writing_steps=2000),
        "a larger world auditor that grounds its questions better (built on first use, ~20 min on 2 CPU cores)",
    ),
    "world-auditor-sighted": (
        WarmStartSettings(
            start_from="world-auditor", vision_steps=0, writing_steps=2000, learning_rate=1e-3, vision_learning_rate=1e-3,
            writing_mix=(("describe", 0.1), ("lookup", 0.15), ("answer", 0.15), ("question", 0.5), ("caption", 0.05), ("edit", 0.05)),
            seed=1,
        ),
        "the default world auditor taught 2,000 steps more, half of them writing questions: it looks cells up far better (shipped with the package)",
    ),
    "world-auditor-grounded": (
        question_practice("world-auditor", "object_question", writing_steps=6000, seed=5),
        (
            "the default world auditor taught 6,000 steps more, half of them writing questions that name an object in the image"
            " (every question type alike): GRPO from it varies its probes (shipped with the package)"
        ),
    ),
    "world-auditor-looking": (
        question_practice("world-auditor-grounded", "looked_question", writing_steps=3000, seed=6),
        (
            "the grounded world auditor taught 3,000 steps more to look at an object's cell before it asks about it"
            ' ("<think> top left: large red circle </think> where is the large red circle?"; the audit runs the question;'
            " shipped with the package)"
        ),
    ),
    "world-auditor-looking-twins": (
        question_practice("world-auditor-looking", "twin_looked_question", writing_steps=2000, seed=7),
        (
            "the looking world auditor taught 2,000 steps more to name, as it looks, every cell holding the same thing:"
            " GRPO from it meets 5x, variety and precision on every planted weakness (shipped with the package)"
        ),
    ),
    "world-auditor-looking-placed": (
        question_practice("world-auditor-looking-twins", "placed_looked_question", writing_steps=2000, seed=8),
        (
            "the twin-looking world auditor taught 2,000 steps more to ask, among its other questions, whether the thing"
            ' it looked at is in the cell it looked at ("is there a large red circle in the top left?"; shipped with the package)'
        ),
    ),
}


def vocabulary() -> tuple[str, ...]:
    """Every word the world's language and the auditor's instructions use."""
    from ..world import WORLD_VOCABULARY

    words = {w for w in WORLD_VOCABULARY if w.isalnum()}
    for variant in PROMPT_VARIANTS.names():
        prompts = PROMPT_VARIANTS.build(variant)
        for text in (prompts.question, prompts.caption, prompts.edit, DESCRIBE, lookup("center")):
            words |= set(re.findall(r"[a-z]+|\d+", text.lower()))
    return tuple(sorted(words))


# -- what the warm start teaches ----------------------------------------------------------------
def _parts(scene) -> dict[str, str]:
    """Position -> what is there ("large red circle", "purple clock showing 3")."""
    from ..world import describe

    text = describe(scene)
    pairs = (re.match(r"^(?:an? )?(.*) in the (.*)$", part).groups() for part in text.split(", ") if part)
    return {position: thing for thing, position in pairs}


def grid_description(scene) -> str:
    parts = _parts(scene)
    return ", ".join(f"{position}: {parts.get(position, 'nothing')}" for position in GRID)


def lookup(position: str) -> str:
    return f"What is in the {position}?"


def lookup_answer(scene, position: str) -> str:
    """What :func:`lookup` of ``position`` is answered: the thing there, or "nothing"."""
    return _parts(scene).get(position, "nothing")


def position_first_caption(scene) -> str:
    """The world's caption, each object led by its position ("top left: large red circle, ...")."""
    parts = _parts(scene)
    return ", ".join(f"{position}: {parts[position]}" for position in GRID if position in parts)


def typed_question(scene, rng: random.Random) -> str | None:
    """A valid question about ``scene``: a question type uniformly, then a question of that type."""
    from ..world import query_space

    by_type: dict[str, list] = {}
    for query in query_space(scene):
        by_type.setdefault(query.qtype, []).append(query)
    if not by_type:
        return None
    queries = by_type[rng.choice(sorted(by_type))]
    return rng.choice(queries).text()


def _object_query(scene, rng: random.Random, placed: bool = False):
    """An object of ``scene`` uniformly, then a question type about it uniformly, then a query of that type:
    (the object, the query), or None where no question names an object. ``placed`` adds one type: whether
    the object, named in full, is in its cell ("is there a large red circle in the top left?"), a question
    whose answer is unique even where the scene holds the object twice."""
    from ..world import Query, Ref, query_space
    from ..world.language import resolve

    index = {id(o): i for i, o in enumerate(scene.objects)}
    by_object: dict[int, dict[str, list]] = {}
    for query in query_space(scene):
        if query.qtype in ("count", "existence"):
            continue
        found = resolve(query.ref, scene)
        if found is not None:
            by_object.setdefault(index[id(found)], {}).setdefault(query.qtype, []).append(query)
    if placed:
        for i, obj in enumerate(scene.objects):
            named = Ref(size=obj.size, color=obj.color, shape=obj.shape, cell=obj.cell)
            by_object.setdefault(i, {})["placed_existence"] = [Query("existence", named)]
    if not by_object:
        return None
    chosen = rng.choice(sorted(by_object))
    by_type = by_object[chosen]
    return scene.objects[chosen], rng.choice(by_type[rng.choice(sorted(by_type))])


def object_question(scene, rng: random.Random) -> str | None:
    """A valid question that names an object of ``scene``: an object uniformly, then a question type about
    it uniformly, then a question of that type. Unlike :func:`typed_question`, whose counts and existence
    filters are valid in almost any scene, each of these is only valid where that object is."""
    found = _object_query(scene, rng)
    return None if found is None else found[1].text()


def looked_question(scene, rng: random.Random) -> str | None:
    """:func:`object_question`, led by a reasoning block that first looks at the object's cell and says what
    is there ("<think> top left: large red circle </think> where is the large red circle?"), as a lookup
    does: the question then copies what was seen rather than recalling it. The audit runs only what
    follows the block (:func:`~auditdm_eval.stages.auditor.strip_reasoning`)."""
    return _look_then_ask(scene, rng, every_twin=False)


def twin_looked_question(scene, rng: random.Random) -> str | None:
    """:func:`looked_question`, whose look names every cell that holds the same thing ("<think> top left, top
    center: large yellow circle </think> what color is the object in the top left?"): a thing that is not
    alone can only be asked about by its cell, and the look says so before the question is written."""
    return _look_then_ask(scene, rng, every_twin=True)


def placed_looked_question(scene, rng: random.Random) -> str | None:
    """:func:`twin_looked_question` whose question may also ask whether the thing looked at, named in full, is
    in the cell looked at (``<think> top left: large yellow circle </think> is there a large yellow circle in
    the top left?``): one more question type about the object, drawn uniformly with the others."""
    return _look_then_ask(scene, rng, every_twin=True, placed=True)


def cells_holding(scene, position: str) -> list[str]:
    """Every cell, in reading order, that holds what ``position`` holds (as :func:`lookup_answer` says it)."""
    seen = lookup_answer(scene, position)
    return [cell for cell in GRID if lookup_answer(scene, cell) == seen]


def _look_then_ask(scene, rng: random.Random, every_twin: bool, placed: bool = False) -> str | None:
    found = _object_query(scene, rng, placed)
    if found is None:
        return None
    thing, query = found
    cells = cells_holding(scene, thing.position) if every_twin else [thing.position]
    return f"{REASONING_START} {', '.join(cells)}: {lookup_answer(scene, thing.position)} {REASONING_END} {query.text()}"


# what the auditor writes for its question prompt, by task; "answer" answers a typed question
QUESTION_TASKS = {
    "question": typed_question, "answer": typed_question, "object_question": object_question, "looked_question": looked_question,
    "twin_looked_question": twin_looked_question, "placed_looked_question": placed_looked_question,
}


def writing_example(scene, rng: random.Random, task: str) -> tuple[str, str] | None:
    from ..world import answer_question, edit_scene, edit_space

    prompts: AuditorPrompts = PROMPT_VARIANTS.build(rng.choice(PROMPT_VARIANTS.names()))
    if task == "describe":
        return DESCRIBE, grid_description(scene)
    if task == "lookup":
        position = rng.choice(GRID)
        return lookup(position), lookup_answer(scene, position)
    if task in QUESTION_TASKS:
        question = QUESTION_TASKS[task](scene, rng)
        if question is None:
            return None
        return (question, answer_question(question, scene)) if task == "answer" else (prompts.question, question)
    edits = edit_space(scene)
    if not edits:
        return None
    edit = rng.choice(edits)
    if task == "caption":
        return prompts.caption, position_first_caption(edit_scene(scene, edit))
    return prompts.edit, edit


# -- building -----------------------------------------------------------------------------------
def build_untrained(settings: WarmStartSettings):
    from model_adapters import tiny
    from model_adapters.sizes import Sizes

    side, width = settings.image_size // settings.patch_size, settings.hidden_size
    sizes = Sizes(
        text={
            "hidden_size": width, "intermediate_size": 2 * width, "num_hidden_layers": settings.layers,
            "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": width // 4, "sliding_window": 256,
            "max_position_embeddings": 1024,
        },
        vision={
            "hidden_size": settings.vision_hidden_size, "intermediate_size": 2 * settings.vision_hidden_size,
            "num_hidden_layers": 1, "num_attention_heads": 4, "image_size": settings.image_size, "patch_size": settings.patch_size,
        },
        image_size=settings.image_size,
        image_tokens=side * side,
    )
    model, processor, eos_ids = tiny.gemma3_parts(sizes, settings.seed, words=vocabulary())
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = eos_ids
    return model, processor


class Batches:
    """Supervised batches (image + instruction -> text) with the prompt's tokens masked out of the loss."""

    def __init__(self, processor, pool_seed: int, seed: int):
        self.processor = processor
        self.pool_seed = pool_seed
        self.rng = random.Random(seed)
        self.prompt_lengths: dict[str, int] = {}

    def make(self, size: int, tasks: TaskMix) -> dict[str, torch.Tensor]:
        from ..world import draw, sample_scene

        names, weights = zip(*tasks)
        prompts, fulls, images = [], [], []
        while len(prompts) < size:
            scene = sample_scene(self.pool_seed, self.rng.randrange(10**6))
            example = writing_example(scene, self.rng, self.rng.choices(names, weights)[0])
            if example is None:
                continue
            instruction, text = example
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
            prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            prompts.append(prompt)
            fulls.append(prompt + text + "<end_of_turn>")
            images.append([draw(scene)])
        return supervised_batch(self.processor, prompts, fulls, images, self.prompt_lengths)


def supervised_batch(
    processor, prompts: list[str], fulls: list[str], images: list, known: dict[str, int]
) -> dict[str, torch.Tensor]:
    """``known`` (prompt -> its length in tokens, filled in here) spares processing the images of a prompt
    seen before a second time: one image always expands to the same number of tokens."""
    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    try:
        batch = processor(text=fulls, images=images, padding=True, return_tensors="pt")
        new = {prompt: image for prompt, image in zip(prompts, images) if prompt not in known}
        if new:
            lengths = processor(text=list(new), images=list(new.values()), padding=False)["input_ids"]
            known.update(zip(new, map(len, lengths)))
    finally:
        tokenizer.padding_side = side
    prompt_lengths = [known[prompt] for prompt in prompts]
    labels = batch["input_ids"].clone()
    for row, length in enumerate(prompt_lengths):
        labels[row, :length] = -100
    labels[batch["attention_mask"] == 0] = -100
    batch["labels"] = labels
    return batch


def train(model, processor, settings: WarmStartSettings, progress: bool = True) -> dict[str, Any]:
    import torch
    from tqdm.auto import tqdm

    if settings.threads:
        torch.set_num_threads(settings.threads)
    vision = [p for name, p in model.named_parameters() if "vision_tower" in name or "multi_modal_projector" in name]
    others = [p for name, p in model.named_parameters() if not ("vision_tower" in name or "multi_modal_projector" in name)]
    optimizer = torch.optim.AdamW(
        [{"params": vision, "lr": settings.vision_learning_rate}, {"params": others, "lr": settings.learning_rate}], weight_decay=0.0
    )
    total = settings.vision_steps + settings.writing_steps
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 50) * max(0.05, 1 - step / total))
    batches = Batches(processor, settings.pool_seed, settings.seed)
    losses = []
    model.train()
    started = time.perf_counter()
    bar = tqdm(range(total), desc="warm start", unit="step", disable=not progress)
    with torch.enable_grad():
        for step in bar:
            tasks = settings.vision_mix if step < settings.vision_steps else settings.writing_mix
            loss = model(**batches.make(settings.batch_size, tasks)).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{loss.item():.3f}", phase="vision" if step < settings.vision_steps else "writing")
    model.eval()
    return {"train_seconds": round(time.perf_counter() - started, 1), "final_loss": round(sum(losses[-20:]) / min(20, len(losses)), 4)}


def evaluate(path: Path, scenes: int = 64, pool_seed: int = 777) -> dict[str, float]:
    """What the warm-started auditor can do on a held-out pool: read the grid, ask valid questions
    about the scene it sees (and not about another), write captions and commands the world renders."""
    from model_adapters import GenerationRequest, GenerationSettings, TransformersVLM

    from ..world import answer, answer_question, caption_to_scene, draw, edit_scene, parse_question, sample_scene

    model = TransformersVLM(str(path), batch_size=64)
    pool = [sample_scene(pool_seed, i) for i in range(scenes)]
    images = [draw(scene) for scene in pool]
    prompts = PROMPT_VARIANTS.build("auditdm")

    def ask(instruction: str, tokens: int, temperature: float = 0.0) -> list[str]:
        settings = GenerationSettings(max_new_tokens=tokens, temperature=temperature)
        return model.generate([GenerationRequest((image,), instruction, "instruct", settings, seed=i) for i, image in enumerate(images)])

    right = total = 0
    for said, scene in zip(ask(DESCRIBE, 90), pool):
        got = dict(part.split(": ", 1) for part in said.split(", ") if ": " in part)
        for position, thing in _parts(scene).items():
            total += 1
            right += got.get(position) == thing
    cells = [(image, scene, position) for image, scene in zip(images, pool) for position in GRID]
    found = model.generate([GenerationRequest((image,), lookup(position), "instruct", GenerationSettings(max_new_tokens=6)) for image, _, position in cells])
    looked_up = sum(reply.strip() == lookup_answer(scene, position) for reply, (_, scene, position) in zip(found, cells))
    questions = [clean_auditor_text(q) for q in ask(prompts.question, QUESTION_TOKENS, temperature=1.0)]

    def valid(question: str, scene) -> bool:
        query = parse_question(question)
        return query is not None and answer(query, scene) is not None

    own = sum(valid(q, scene) for q, scene in zip(questions, pool))
    asked = [typed_question(scene, random.Random(i)) for i, scene in enumerate(pool)]
    replies = model.generate([GenerationRequest((image,), q, "instruct", GenerationSettings(max_new_tokens=4)) for image, q in zip(images, asked)])
    answered = sum(reply.strip() == answer_question(q, scene) for reply, q, scene in zip(replies, asked, pool))
    other = sum(valid(q, scene) for q, scene in zip(questions, pool[1:] + pool[:1]))
    types = Counter(parse_question(q).qtype for q in questions if parse_question(q) is not None)

    def renders(text: str, scene, edit: bool) -> bool:
        try:
            edit_scene(scene, text) if edit else caption_to_scene(text)
            return True
        except ValueError:
            return False

    captions = sum(renders(c, s, False) for c, s in zip(ask(prompts.caption, 80, 1.0), pool))
    edits = sum(renders(c, s, True) for c, s in zip(ask(prompts.edit, 20, 1.0), pool))
    return {
        "objects_described_right": round(right / max(total, 1), 3),
        "cells_looked_up_right": round(looked_up / len(cells), 3),
        "questions_answered_right": round(answered / scenes, 3),
        "questions_valid_on_their_scene": round(own / scenes, 3),
        "questions_valid_on_another_scene": round(other / scenes, 3),
        "question_types": len(types),
        "distinct_questions_per_100": round(100 * len(set(questions)) / scenes, 1),
        "captions_rendered": round(captions / scenes, 3),
        "edit_commands_rendered": round(edits / scenes, 3),
    }


def build_environment() -> dict[str, str]:
    """What a build's weights depend on besides its settings: the same seed trains different weights
    under another torch, transformers or CPU (float kernels), so the validation figures are a build's own."""
    import torch
    import transformers

    return {
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": str(torch.get_num_threads()),
    }


def build_world_auditor(
    out_dir: str | Path, settings: WarmStartSettings = WarmStartSettings(), progress: bool = True, base: Path | None = None
) -> Path:
    """Train ``settings`` from a random initialisation, or on from ``base`` (the folder of the warm start
    ``settings.start_from`` names), save it into ``out_dir`` and validate it there."""
    out_dir = Path(out_dir)
    if (base is None) != (settings.start_from is None):
        raise ValueError(f"start_from={settings.start_from!r} needs the folder of that warm start as base, and only it (got {base})")
    if base is None:
        model, processor = build_untrained(settings)
    else:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        model, processor = AutoModelForImageTextToText.from_pretrained(base), AutoProcessor.from_pretrained(base)
    report = train(model, processor, settings, progress)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    report.update(evaluate(out_dir))
    record = {"settings": asdict(settings), "validation": report, "built_with": build_environment()}
    if base is not None:
        record["started_from"] = base.name
    (out_dir / "warm_start.json").write_text(json.dumps(record, indent=2))
    logger.info("warm-started world auditor: %s", report)
    return out_dir


def folder_name(settings: WarmStartSettings) -> str:
    return f"world-auditor-{settings.key()}"


def shipped_copy(settings: WarmStartSettings) -> Path | None:
    """The package's own build of ``settings``, if it ships one for the world's current code."""
    folder = SHIPPED / folder_name(settings)
    return folder if (folder / "warm_start.json").exists() else None


def ensure_world_auditor(root: str | Path, settings: WarmStartSettings = WarmStartSettings(), progress: bool = True) -> Path:
    """The warm-started auditor for ``settings`` under ``root``: the shipped copy, or built there on
    first use (a quarter of an hour on 2 CPU cores)."""
    from model_adapters.tiny import COMPLETE, build_once

    target = Path(root) / folder_name(settings)
    shipped = shipped_copy(settings)
    if shipped is not None:
        return build_once(target, lambda staging: shutil.copytree(shipped, staging, dirs_exist_ok=True), f"{__name__} (shipped)")
    if (target / COMPLETE).exists():
        return target
    base = base_folder(root, settings, progress)
    logger.warning("building the warm-started world auditor into %s (once; minutes to a quarter of an hour on 2 CPU cores)", target)
    return build_once(target, lambda staging: build_in_child(staging, settings, progress, base), __name__)


def base_folder(root: str | Path, settings: WarmStartSettings, progress: bool = True) -> Path | None:
    """The folder of the warm start ``settings`` continues (installed or built under ``root`` first), or None."""
    return ensure_world_auditor(root, settings.base(), progress) if settings.start_from else None


def ship(name: str) -> Path:
    """Build the registered warm start ``name`` into the package's ``shipped/`` folder and drop the
    copies no registered warm start uses any more (built for older settings or world code)."""
    settings = WARM_STARTS[name][0]
    base = shipped_copy(settings.base()) if settings.start_from else None
    if settings.start_from and base is None:
        raise RuntimeError(f"{name} continues {settings.start_from}, which ships no copy for the current world: ship {settings.start_from} first")
    target = SHIPPED / folder_name(settings)
    staging = SHIPPED / f".{target.name}-building"
    shutil.rmtree(staging, ignore_errors=True)
    build_in_child(staging, settings, progress=True, base=base)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    current = {folder_name(registered) for registered, _ in WARM_STARTS.values()}
    for folder in SHIPPED.glob("world-auditor-*"):
        if folder.name not in current:
            shutil.rmtree(folder)
    return target


def build_in_child(out_dir: Path, settings: WarmStartSettings, progress: bool, base: Path | None = None) -> None:
    """``build_world_auditor`` in a fresh interpreter: torch picks its kernels once, when it loads."""
    entry = f"import sys; from {MODULE} import build_from_argv; build_from_argv(sys.argv[1:])"
    command = [sys.executable, "-c", entry, str(out_dir), json.dumps(asdict(settings)), "progress" if progress else "quiet"]
    command += [str(base)] if base is not None else []
    done = subprocess.run(command, env={**os.environ, **portable_kernels()}, check=False)
    if done.returncode:
        raise RuntimeError(f"building the world auditor into {out_dir} failed (exit {done.returncode}); its output is above")


def settings_from_record(fields: dict[str, Any]) -> WarmStartSettings:
    """Settings from their record (``asdict``, as ``warm_start.json`` keeps them; JSON makes the mixes lists)."""
    mixes = {name: tuple(tuple(task) for task in fields[name]) for name in ("vision_mix", "writing_mix")}
    return WarmStartSettings(**{**fields, **mixes})


def settings_from_json(text: str) -> WarmStartSettings:
    return settings_from_record(json.loads(text))


def build_from_argv(argv: list[str]) -> None:
    """The child's side of ``build_in_child``: out_dir, the settings as JSON, "progress" or "quiet", and
    the base's folder when the settings continue another warm start."""
    logging.basicConfig(level=logging.INFO)
    out_dir, settings, progress, *base = argv
    build_world_auditor(out_dir, settings_from_json(settings), progress=progress == "progress", base=Path(base[0]) if base else None)


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description="Build warm-started world auditors.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("ship", help="rebuild a registered warm start into the package (then commit it)").add_argument(
        "name", choices=sorted(WARM_STARTS)
    )
    build = commands.add_parser("build", help="build a registered warm start into a folder of your own (this machine's build)")
    build.add_argument("name", choices=sorted(WARM_STARTS))
    build.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if args.command == "ship":
        print(ship(args.name))
    else:
        from model_adapters.registry import tiny_root

        # stopped (timeout, kill): unwind, so that the child and the staging folder go too
        signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
        try:
            print(build_into(args.out, WARM_STARTS[args.name][0], tiny_root()))
        except FileExistsError as error:
            parser.error(str(error))


def built_settings(folder: Path) -> WarmStartSettings | None:
    """The settings of the finished build in ``folder``, or None."""
    from model_adapters.tiny import COMPLETE

    record = folder / "warm_start.json"
    if not ((folder / COMPLETE).exists() and record.exists()):
        return None
    return settings_from_record(json.loads(record.read_text())["settings"])


def build_into(out: Path, settings: WarmStartSettings, root: str | Path) -> Path:
    """Build ``settings`` into a folder of the user's own through a staging folder beside it: ``out``
    appears only when complete, a build of the same settings there is not repeated, and a folder that
    holds anything else is never written over (a base it continues is installed under ``root``)."""
    from model_adapters.tiny import build_once

    if built_settings(out) == settings:
        return out
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty and holds no finished build of these settings: pass a new folder, or delete it to rebuild there")
    base = base_folder(root, settings)
    return build_once(out, lambda staging: build_in_child(staging, settings, progress=True, base=base), __name__)


if __name__ == "__main__":
    from auditdm_eval.training.warm_start import main as imported_main  # the one instance the package already loaded

    imported_main()
