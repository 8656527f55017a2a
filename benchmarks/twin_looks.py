"""Does an auditor's look notice a thing the scene holds twice? A diagnostic of the look-then-ask starts.

The looking auditors write ``<think> <cells>: <thing> </think> <question>``; the twin-looking ones are
taught to name every cell that holds the same thing, since a thing held twice has no unique answer to
"where is it?". For each thing of a held-out pool, the auditor is given its question prompt and
``<think> <the thing's first cell>`` and goes on greedily; the cells it names before the colon are
compared with the cells that hold that thing. Two figures: things held more than once whose every cell
is named (the twin noticed), and things held once named alone (no twin invented). A look that names the
second cell no more often for a twin than for a lone thing does not see twins.

    python benchmarks/twin_looks.py world-auditor-looking world-auditor-looking-twins \
        --json benchmarks/results/twin-looks.json
    python benchmarks/twin_looks.py outputs/auditor-world/checkpoint-1500   # a GRPO checkpoint
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import machine  # a sibling module: this folder is on sys.path when it runs


def things_by_cells(scene) -> dict[str, list[str]]:
    """What the scene holds -> every cell holding it, in reading order."""
    from auditdm_eval.training.warm_start import GRID, cells_holding, lookup_answer

    return {lookup_answer(scene, cell): cells_holding(scene, cell) for cell in GRID if lookup_answer(scene, cell) != "nothing"}


def named_cells(first: str, continuation: str) -> list[str]:
    """The cells a look names: ``first``, then those the continuation lists before its colon."""
    listed = continuation.split(":", 1)[0].strip().lstrip(",")
    return [first] + [cell.strip() for cell in listed.split(",") if cell.strip()]


def measure(path: str, scenes: int, pool_seed: int, lone_limit: int) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from auditdm_eval.prompts import PROMPT_VARIANTS
    from auditdm_eval.stages.auditor import REASONING_START
    from auditdm_eval.world import draw, sample_scene

    model = AutoModelForImageTextToText.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT_VARIANTS.build("auditdm").question}]}]
    head = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    counts = {"twins": 0, "twins_named_in_full": 0, "lone": 0, "lone_named_alone": 0}
    for index in range(scenes):
        scene = sample_scene(pool_seed, index)
        for cells in things_by_cells(scene).values():
            kind = "twins" if len(cells) > 1 else "lone"
            if kind == "lone" and counts["lone"] >= lone_limit:
                continue
            inputs = processor(text=[f"{head}{REASONING_START} {cells[0]}"], images=[[draw(scene)]], return_tensors="pt")
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=14, do_sample=False)
            said = processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            counts[kind] += 1
            counts["twins_named_in_full" if kind == "twins" else "lone_named_alone"] += named_cells(cells[0], said) == cells
    return {
        **counts,
        "share_of_twins_named_in_full": counts["twins_named_in_full"] / max(counts["twins"], 1),
        "share_of_lone_named_alone": counts["lone_named_alone"] / max(counts["lone"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("auditors", nargs="+", help="registered warm starts or checkpoints")
    parser.add_argument("--scenes", type=int, default=600, help="held-out scenes (about one in six holds a twin)")
    parser.add_argument("--pool-seed", type=int, default=7)
    parser.add_argument("--lone-limit", type=int, default=200, help="things held once to try, at most")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import auditdm_eval  # noqa: F401  (registers the world's model names)
    from model_adapters import UnknownModelError, resolve

    try:
        paths = {auditor: resolve(auditor)[0] for auditor in args.auditors}
    except UnknownModelError as error:
        print(error, file=sys.stderr)
        return 1
    results = {"machine": machine(), "scenes": args.scenes, "pool_seed": args.pool_seed, "auditors": {}}
    for auditor, path in paths.items():
        found = results["auditors"][auditor] = measure(path, args.scenes, args.pool_seed, args.lone_limit)
        print(f"{auditor}: twins named in full {found['twins_named_in_full']}/{found['twins']}, "
              f"lone things named alone {found['lone_named_alone']}/{found['lone']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
