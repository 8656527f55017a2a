"""Where a training run (``train-auditor``, a rectification recipe) starts in its ``output_dir``: from
the beginning, from the last whole checkpoint of the same run (an interrupted run resumes), or nowhere
(it already finished).

A run file (``auditor_training_run.json``, ``rectify_run.json``) says which run a folder holds: all
its settings (the audit's or the recipe's, trl's ``GRPOConfig``/``SFTConfig`` and ``ModelConfig``). A
rerun with the same settings resumes; a rerun that only changes how often and where it writes (logging,
checkpoints) or asks for more steps continues the run (``--max_steps 3000`` after a finished
1,500-step run trains 1,500 more) or only moves it (``--use_cpu false --bf16 true`` on a GPU: a warning
says that it will not match a run never moved, bit for bit); any other change is refused, naming what changed, unless
``--overwrite`` replaces the run. A checkpoint counts as whole once its ``trainer_state.json`` is
readable: the Trainer writes that file last, so a run killed while saving resumes from the checkpoint
before.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from ..runlock import RunLock, RunLockHeld, describe_holder
from ..store import OutputInUseError, RunMismatchError

logger = logging.getLogger(__name__)

TRAINER_STATE = "trainer_state.json"
# TrainingArguments fields that say where, how often and how far to write or log, not what is trained
CONTINUES_THE_RUN = frozenset({
    "output_dir", "logging_dir", "logging_steps", "logging_first_step", "logging_strategy", "log_level", "log_completions",
    "num_completions_to_print", "disable_tqdm", "report_to", "run_name", "save_steps", "save_strategy", "save_total_limit",
    "save_only_model", "resume_from_checkpoint", "max_steps", "num_train_epochs", "push_to_hub", "hub_model_id",
    "hub_strategy", "hub_private_repo", "dataloader_num_workers", "dataloader_persistent_workers",
    "notes", "overwrite",
})
# TrainingArguments fields that say what the run runs on, not what it trains: a run moved to another machine
# (a CPU run continued on a GPU, bf16 there) continues, with a warning that it will not match a run never moved
MOVES_THE_RUN = frozenset({
    "use_cpu", "bf16", "fp16", "tf32", "bf16_full_eval", "fp16_full_eval", "half_precision_backend",
    "dataloader_pin_memory", "gradient_checkpointing", "gradient_checkpointing_kwargs", "activation_checkpointing",
    "torch_compile", "torch_compile_backend", "torch_compile_mode", "use_vllm", "vllm_mode", "vllm_gpu_memory_utilization",
    "vllm_server_base_url", "vllm_server_host", "vllm_server_port", "ddp_backend",
})


@dataclass(frozen=True)
class StartingPoint:
    checkpoint: Path | None = None  # resume from it; None: from the first step
    finished: dict[str, Any] | None = None  # the finished run's record when no step is left to train

    @property
    def resume_from(self) -> str | None:
        """What ``Trainer.train(resume_from_checkpoint=...)`` takes."""
        return None if self.checkpoint is None else str(self.checkpoint)

    def describe(self) -> str:
        if self.finished is not None:
            return f"already trained ({self.finished.get('global_step', '?')} steps): nothing to do"
        return f"resuming from {self.checkpoint}" if self.checkpoint is not None else "training from the first step"


def trainer_settings(arguments: Any) -> dict[str, Any]:
    """A ``TrainingArguments``' fields as a run file records them (without the Hub token)."""
    return {key: value for key, value in arguments.to_dict().items() if key != "hub_token"}


def whole_checkpoints(output_dir: str | Path) -> list[Path]:
    """The checkpoints of ``output_dir`` the Trainer finished writing, in step order."""
    found = []
    for path in Path(output_dir).glob("checkpoint-*"):
        step = path.name.split("-")[-1]
        if step.isdigit() and _readable_json(path / TRAINER_STATE) is not None:
            found.append((int(step), path))
    return [path for _, path in sorted(found)]


def changed_settings(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between two runs' settings, ignoring what only continues or moves the run (and a part of
    the settings that the earlier run's version did not record)."""
    return _differences(previous, current, lambda key: key not in CONTINUES_THE_RUN and key not in MOVES_THE_RUN)


def moved_settings(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs in where and in what precision the run runs (:data:`MOVES_THE_RUN`)."""
    return _differences(previous, current, MOVES_THE_RUN.__contains__)


def _differences(previous: dict[str, Any], current: dict[str, Any], counts: Callable[[str], bool]) -> list[str]:
    """``part.key: before -> after`` for each setting that differs and ``counts`` (a whole part by its name)."""
    changes = []
    for part in sorted(set(previous) & set(current)):
        before, now = previous[part], current[part]
        if isinstance(before, dict) and isinstance(now, dict):
            changes += [
                f"{part}.{key}: {before.get(key)!r} -> {now.get(key)!r}"
                for key in sorted(set(before) | set(now)) if counts(key) and before.get(key) != now.get(key)
            ]
        elif counts(part) and before != now:
            changes.append(f"{part}: {before!r} -> {now!r}")
    return changes


def finished_steps(record: dict[str, Any]) -> int:
    if "global_step" in record:
        return int(record["global_step"])
    return max((int(entry.get("step", 0)) for entry in record.get("log_history", [])), default=0)


class TrainingFolder:
    """``output_dir`` of one training run, held by this process while it trains (``with`` it).

    ``run_file`` names the run the folder holds (written before the first step), ``record`` the finished
    run (its settings, steps and log history): it is there only once the run ended.
    """

    def __init__(self, output_dir: str | Path, command: str, run_file: str, record: str):
        self.root = Path(output_dir)
        self.command, self.run_file, self.record = command, run_file, record
        self._lock = RunLock(self.root, command=command)

    def __enter__(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except RunLockHeld as held:
            raise OutputInUseError(
                f"{self.root} is in use by another {self.command} run ({describe_holder(held.holder)}). Wait for it to "
                "finish or stop it, or pass another --output_dir. (A run that was killed gives the folder back by itself.)",
                held.holder,
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def start(
        self, settings: dict[str, Any], max_steps: int, epochs: float, overwrite: bool = False, checkpoint: str | None = None,
    ) -> StartingPoint:
        """Where the run described by ``settings`` starts here (``max_steps`` steps, or ``epochs`` when it is not
        positive); records it in the run file. ``checkpoint`` (``--resume_from_checkpoint``) names the checkpoint
        to resume from instead of the last.
        """
        settings = json.loads(json.dumps(settings, default=str))  # compared as it reads back from disk
        previous = _readable_json(self.root / self.run_file) or _readable_json(self.root / self.record)
        found = whole_checkpoints(self.root)
        if previous is not None and (changes := changed_settings(previous, settings)):
            if not overwrite:
                raise RunMismatchError(
                    f"{self.root} holds another {self.command} run ({'; '.join(changes)}). Pass a new --output_dir to "
                    "keep both, rerun with the same settings to resume it, or pass --overwrite to replace it."
                )
            self._clear()
            previous, found = None, []
        elif previous is not None and found and (moves := moved_settings(previous, settings)):
            logger.warning(
                "%s continues %s on other hardware or precision (%s): it will not match, bit for bit, a run never moved",
                self.command, self.root, "; ".join(moves),
            )
        elif previous is None and found and not overwrite:
            raise RunMismatchError(
                f"{self.root} holds checkpoints ({found[-1].name} the last) but no {self.run_file} saying which run wrote them. "
                "Pass a new --output_dir, or --overwrite to replace them."
            )
        elif previous is None and found:
            self._clear()
            found = []
        _write_json(self.root / self.run_file, settings)
        if checkpoint is not None:
            named = Path(checkpoint)
            if _readable_json(named / TRAINER_STATE) is None:
                raise RunMismatchError(f"--resume_from_checkpoint {checkpoint}: no readable {TRAINER_STATE} there; name a checkpoint-<step> folder")
            return StartingPoint(checkpoint=named)
        record = _readable_json(self.root / self.record)
        if record is not None and (
            finished_steps(record) >= max_steps if max_steps > 0 else float(record.get("epoch", 0)) >= epochs - 1e-9
        ):
            return StartingPoint(finished=record)
        return StartingPoint(checkpoint=found[-1] if found else None)

    def finish(self, settings: dict[str, Any], state: Any, **more: Any) -> dict[str, Any]:
        """Record the finished run (``state``: the Trainer's ``TrainerState``) and what else the caller reports."""
        record = {
            **json.loads(json.dumps(settings, default=str)), **more,
            "global_step": int(state.global_step), "epoch": float(state.epoch or 0), "log_history": state.log_history,
        }
        _write_json(self.root / self.record, record)
        return record

    def _clear(self) -> None:
        for path in self.root.glob("checkpoint-*"):
            shutil.rmtree(path)
        for name in (self.run_file, self.record):
            (self.root / name).unlink(missing_ok=True)


def reloading_checkpoints_with_from_pretrained(trainer_class: type, use_peft: bool, trust_remote_code: bool = False) -> type:
    """``trainer_class`` whose resume restores a full model's weights through ``from_pretrained``.

    The Trainer restores a checkpoint's weights with ``load_state_dict`` on the saved key names, without
    the renaming ``from_pretrained`` applies (transformers#43701): for Gemma3 and other VLMs whose saved
    names differ from the model's, no weight is restored, only a warning is logged. A LoRA adapter loads
    right through the Trainer's own path. The model being trained stays the one the run began with, so a
    KL reference built from it is unchanged.
    """

    class Resuming(trainer_class):
        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            if use_peft:
                return super()._load_from_checkpoint(resume_from_checkpoint, model)
            trained = self.accelerator.unwrap_model(model if model is not None else self.model)
            saved = type(trained).from_pretrained(resume_from_checkpoint, trust_remote_code=trust_remote_code)
            trained.load_state_dict(saved.state_dict())

    Resuming.__name__ = Resuming.__qualname__ = f"Resuming{trainer_class.__name__}"
    return Resuming


def _readable_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write_json(path: Path, value: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.tmp")
    partial.write_text(json.dumps(value, indent=1, default=str))
    partial.replace(path)
