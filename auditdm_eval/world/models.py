"""The world's models: an oracle, noisy oracles and targets with planted weaknesses.

Every model reads the scene from the pixels of ``images[0]`` (:func:`~.decode.decode`) and parses
the prompt as a question (:func:`~.language.parse_question`). A ``vqa`` request whose image is no
world scene, whose question the world does not understand, or whose question does not apply to
the scene (a description that picks out no object or several) gets ``""``: not an answer, so an
ensemble never agrees on it. ``instruct`` requests get ``""`` too.

- The **oracle** answers the truth.
- A **noisy oracle** answers wrong with probability ``error_rate``, independently per
  (noise seed, scene, question: its parsed, canonical form, so rewordings share it); the wrong answer is drawn uniformly from the answer space of the
  question's type, without the true answer.
- A **correlated** noisy oracle shares an error source with its family (``family_seed``): on a
  shared "hard" item (probability ``error_rate``) each member gives the family's one wrong answer
  with probability ``correlation``; otherwise it errs privately at the rate
  ``error_rate * (1 - correlation) / (1 - error_rate * correlation)`` that keeps its own error
  rate at ``error_rate``. Measured over the question space with 10% and 0.8: two members give
  the same wrong answer on 6.3% of items (0.7% for independent oracles, nearly all on yes/no
  questions) and a majority of three is wrong on 9.0% (2.1% for independent ones).
- A **weak target** answers what a weakness function says: ``fn(scene, question, true_answer) ->
  weak answer`` (None or the true answer: it answers correctly), registered by name with
  :func:`register_weakness` or given as ``module:function``. The built-in weaknesses go through
  the same hook.

Every decision is a deterministic function of the model's settings, the scene and the question,
so answers are reproducible across processes and cacheable; the fingerprint covers the world's
code, the weakness (its name and source), the noise settings and seeds.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from .decode import decode
from .language import ANSWER_SPACES, Query, answer, parse_question
from .scene import Scene, mirror_left_right, swap_colors

WeaknessFn = Callable[[Scene, str, str], "str | None"]
WEAKNESSES: dict[str, WeaknessFn] = {}

DEFAULT_ERROR_RATE = 0.1
DEFAULT_CORRELATION = 0.8


# modules that decide nothing the world draws, reads back, samples or answers (its registration in the
# project, re-exports, a measurement script): editing them keeps caches and warm starts; any other
# module of the package, a new one included, is hashed
UNHASHED_MODULES = ("__init__.py", "integration.py", "stats.py")


def source_hash(package: Path) -> str:
    """A hash of the modules of ``package`` but :data:`UNHASHED_MODULES`."""
    digest = hashlib.sha256()
    for path in sorted(p for p in package.glob("*.py") if p.name not in UNHASHED_MODULES):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def world_code_hash() -> str:
    """A hash of the world's behaviour: part of every world fingerprint and warm-start key (answers and
    drawings change with it)."""
    global _CODE_HASH
    if _CODE_HASH is None:
        _CODE_HASH = source_hash(Path(__file__).parent)
    return _CODE_HASH


_CODE_HASH: str | None = None


def register_weakness(name: str, fn: WeaknessFn) -> WeaknessFn:
    """Register ``fn(scene, question, true_answer) -> weak answer`` (None: answers correctly) as ``name``.

    A target with it is the model ``world-target:<name>``. Returns ``fn`` (usable as a decorator
    through ``functools.partial`` or a lambda).
    """
    if ":" in name or not name:
        raise ValueError(f"a weakness name may not be empty or contain ':' (got {name!r})")
    WEAKNESSES[name] = fn
    return fn


def resolve_weakness(spec: str) -> tuple[str, WeaknessFn]:
    """(name, function) of a registered weakness name or a ``module:function`` (imported)."""
    if spec in WEAKNESSES:
        return spec, WEAKNESSES[spec]
    module_name, sep, attribute = spec.rpartition(":")
    if not sep:
        raise ValueError(
            f"unknown weakness {spec!r}: registered ones are {', '.join(sorted(WEAKNESSES))}; or give "
            "'module:function' naming a function (scene, question, true_answer) -> weak answer"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"weakness {spec!r}: cannot import module {module_name!r} ({error})") from error
    fn = module
    for part in attribute.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"weakness {spec!r}: module {module_name!r} has no {attribute!r}")
    if not callable(fn):
        raise ValueError(f"weakness {spec!r}: {attribute!r} is not a function")  # noqa: TRY004 (a bad name)
    return spec, fn  # type: ignore[return-value]


def _source_hash(fn: Callable[..., Any], depth: int = 0) -> str:
    try:
        source = inspect.getsource(fn)
    except (OSError, TypeError):
        source = f"{getattr(fn, '__module__', '')}:{getattr(fn, '__qualname__', repr(fn))}"
    closure = getattr(fn, "__closure__", None) or ()
    for cell in closure:  # the view functions of weakness_from_view, the values of partials
        value = cell.cell_contents
        source += _source_hash(value, depth + 1) if callable(value) and depth < 3 else repr(value)
    return hashlib.sha256(source.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# weaknesses: the built-in ones go through the same hook a user's does


def weakness_from_view(view: Callable[[Scene], Scene]) -> WeaknessFn:
    """A weakness of perception: the target answers as if it saw ``view(scene)``.

    When the question does not apply to the seen scene (its description picks out nothing there)
    the target answers correctly.
    """

    def weak(scene: Scene, question: str, true_answer: str) -> str | None:
        query = parse_question(question)
        return None if query is None else answer(query, view(scene))

    weak.__doc__ = f"answers as if it saw {getattr(view, '__name__', 'a changed scene')}(scene)"
    return weak


def swap_red_green(scene: Scene) -> Scene:
    return swap_colors(scene, "red", "green")


def undercount(scene: Scene, question: str, true_answer: str) -> str | None:
    """Counts of three or more come out one lower."""
    query = parse_question(question)
    if query is None or query.qtype != "count" or not true_answer.isdigit():
        return None
    n = int(true_answer)
    return str(n - 1) if n >= 3 else None


def no_weakness(scene: Scene, question: str, true_answer: str) -> str | None:
    return None


register_weakness("redgreen", weakness_from_view(swap_red_green))
register_weakness("mirror", weakness_from_view(mirror_left_right))
register_weakness("undercount", undercount)
register_weakness("none", no_weakness)
BUILTIN_WEAKNESSES: tuple[str, ...] = ("redgreen", "mirror", "undercount", "none")


# ---------------------------------------------------------------------------------------------
# deterministic noise


def _uniform(*parts: Any) -> float:
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _wrong_answer(query: Query, true_answer: str, *parts: Any) -> str:
    space = [a for a in ANSWER_SPACES[query.answer_kind] if a != true_answer]
    return space[int(_uniform("wrong", *parts) * len(space))]


@dataclass(frozen=True)
class Noise:
    """How a model errs: ``kind`` none, independent or correlated (see the module docstring)."""

    kind: str = "none"
    error_rate: float = 0.0
    seed: int = 0
    correlation: float = DEFAULT_CORRELATION
    family_seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("none", "independent", "correlated"):
            raise ValueError(f"unknown noise {self.kind!r}; choose none, independent or correlated")
        if not 0 <= self.error_rate < 1:
            raise ValueError(f"error_rate must be in [0, 1) (got {self.error_rate})")
        if not 0 <= self.correlation <= 1:
            raise ValueError(f"correlation must be in [0, 1] (got {self.correlation})")

    def apply(self, scene: Scene, query: Query, true_answer: str) -> str:
        if self.kind == "none" or self.error_rate == 0:
            return true_answer
        item = (scene.to_json(), query.text())
        rate = self.error_rate
        if self.kind == "correlated":
            if _uniform("shared", self.family_seed, *item) < rate and _uniform("follow", self.seed, *item) < self.correlation:
                return _wrong_answer(query, true_answer, "family", self.family_seed, *item)
            rate = rate * (1 - self.correlation) / (1 - rate * self.correlation)
        if _uniform("private", self.seed, *item) < rate:
            return _wrong_answer(query, true_answer, "own", self.seed, *item)
        return true_answer

    def key(self) -> dict[str, Any]:
        if self.kind == "none" or self.error_rate == 0:
            return {"kind": "none"}
        out: dict[str, Any] = {"kind": self.kind, "error_rate": self.error_rate, "seed": self.seed}
        if self.kind == "correlated":
            out |= {"correlation": self.correlation, "family_seed": self.family_seed}
        return out


# ---------------------------------------------------------------------------------------------
# the model


class WorldModel:
    """A world model behind the ``model_adapters`` protocol (``model_id``, ``fingerprint``, ``generate``).

    ``weakness``: a registered name or ``module:function`` (None: none). ``noise``: ``none``,
    ``independent`` or ``correlated`` at ``error_rate``. Loader kwargs that mean nothing here
    (dtype, device, batch_size, trust_remote_code, ...) are accepted and ignored.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        weakness: str | None = None,
        noise: str = "none",
        error_rate: float = 0.0,
        noise_seed: int = 0,
        correlation: float = DEFAULT_CORRELATION,
        family_seed: int = 0,
        model_id: str | None = None,
        **_ignored: Any,
    ):
        self.model_id = model_id or path or "world-oracle"
        self.noise = Noise(noise, float(error_rate), int(noise_seed), float(correlation), int(family_seed))
        if weakness in (None, "", "none"):
            self.weakness_name, self.weakness = "none", None
        else:
            self.weakness_name, self.weakness = resolve_weakness(weakness)
        key = {
            "world": world_code_hash(),
            "weakness": None if self.weakness is None else [self.weakness_name, _source_hash(self.weakness)],
            "noise": self.noise.key(),
        }
        self.fingerprint = "world-" + hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]

    def __repr__(self) -> str:
        return f"WorldModel({self.model_id!r}, weakness={self.weakness_name!r}, noise={self.noise.key()})"

    def answer(self, image: Image.Image, question: str) -> str:
        """The model's answer to one question about one image (``""``: no answer)."""
        scene = decode(image)
        if scene is None:
            return ""
        return self.answer_scene(scene, question)

    def answer_scene(self, scene: Scene, question: str) -> str:
        """The answer about a scene already decoded (what :meth:`answer` gives for its drawing)."""
        query = parse_question(question)
        if query is None:
            return ""
        truth = answer(query, scene)
        if truth is None:
            return ""
        given = truth
        if self.weakness is not None:
            weak = self.weakness(scene, question, truth)
            if weak is not None and str(weak).strip():
                given = str(weak).strip()
        return self.noise.apply(scene, query, given) if given == truth else given

    def generate(self, requests: Sequence[Any]) -> list[str]:
        from model_adapters.protocol import check_single_sample

        check_single_sample(requests)
        out = []
        for request in requests:
            if request.task != "vqa" or not request.images:
                out.append("")
            else:
                out.append(self.answer(request.images[0], request.prompt))
        return out


def weak_answer(weakness: str | WeaknessFn, scene: Scene, question: str) -> str | None:
    """What a target with ``weakness`` answers about ``scene`` (None when the question does not apply)."""
    fn = resolve_weakness(weakness)[1] if isinstance(weakness, str) else weakness
    query = parse_question(question)
    if query is None:
        return None
    truth = answer(query, scene)
    if truth is None:
        return None
    weak = fn(scene, question, truth)
    return truth if weak is None or not str(weak).strip() else str(weak).strip()


def exposing_questions(scene: Scene, weakness: str | WeaknessFn, questions: Sequence[str] | None = None) -> list[str]:
    """The questions (of ``questions``, default the scene's whole question space) a weakness answers wrongly.

    A scene with none cannot show the weakness through a question on the original image: the
    basis of the scene-aware ceiling.
    """
    from ..matching import normalize_answer
    from .language import question_space

    fn = resolve_weakness(weakness)[1] if isinstance(weakness, str) else weakness
    out = []
    for question in questions if questions is not None else question_space(scene):
        query = parse_question(question)
        truth = None if query is None else answer(query, scene)
        if truth is None:
            continue
        weak = fn(scene, question, truth)
        if weak is not None and str(weak).strip() and normalize_answer(str(weak)) != normalize_answer(truth):
            out.append(question)
    return out


# ---------------------------------------------------------------------------------------------
# registered model names

NOISY_SEEDS = {"a": 1, "b": 2, "c": 3}
CORRELATED_FAMILY_SEED = 100


def model_kwargs() -> dict[str, tuple[dict[str, Any], str]]:
    """The registered world model names -> (WorldModel kwargs, description)."""
    models: dict[str, tuple[dict[str, Any], str]] = {
        "world-oracle": ({}, "world oracle: answers every world question from the scene decoded from pixels"),
    }
    for letter, seed in NOISY_SEEDS.items():
        models[f"world-oracle-noisy-{letter}"] = (
            {"noise": "independent", "error_rate": DEFAULT_ERROR_RATE, "noise_seed": seed},
            f"world oracle with independent errors on {DEFAULT_ERROR_RATE:.0%} of questions (noise seed {seed})",
        )
        models[f"world-oracle-correlated-{letter}"] = (
            {"noise": "correlated", "error_rate": DEFAULT_ERROR_RATE, "noise_seed": seed,
             "correlation": DEFAULT_CORRELATION, "family_seed": CORRELATED_FAMILY_SEED},
            (f"world oracle erring on {DEFAULT_ERROR_RATE:.0%} of questions, mostly on the same items with the same "
             "wrong answer as the other world-oracle-correlated-* models"),
        )
    descriptions = {
        "redgreen": "sees red as green and green as red",
        "mirror": "sees the scene mirrored: left and right exchanged",
        "undercount": "reports counts of three or more one lower",
        "none": "no weakness: a control whose audit must find nothing",
    }
    for name, text in descriptions.items():
        models[f"world-target-{name}"] = ({"weakness": name}, f"world target with a planted weakness: {text}")
    return models


def parse_model_name(name: str) -> dict[str, Any]:
    """WorldModel kwargs of a prefixed name: ``world-target:<weakness or module:function>``,
    ``world-oracle-noisy:<rate>[:<seed>]``, ``world-oracle-correlated:<rate>[:<seed>[:<correlation>]]``."""
    prefix, _, rest = name.partition(":")
    if prefix == "world-target":
        if not rest:
            raise ValueError("world-target: needs a weakness: world-target:<name> or world-target:<module>:<function>")
        resolve_weakness(rest)  # fail at load time, with the reason
        return {"weakness": rest}
    if prefix in ("world-oracle-noisy", "world-oracle-correlated"):
        parts = rest.split(":") if rest else []
        try:
            rate = float(parts[0]) if parts else DEFAULT_ERROR_RATE
            seed = int(parts[1]) if len(parts) > 1 else 1
            correlation = float(parts[2]) if len(parts) > 2 else DEFAULT_CORRELATION
        except ValueError:
            raise ValueError(f"cannot read {name!r}: expected {prefix}:<error rate>[:<seed>]") from None
        kwargs: dict[str, Any] = {"error_rate": rate, "noise_seed": seed}
        if prefix == "world-oracle-noisy":
            kwargs["noise"] = "independent"
        else:
            kwargs |= {"noise": "correlated", "correlation": correlation, "family_seed": CORRELATED_FAMILY_SEED}
        Noise(kwargs["noise"], rate, seed, kwargs.get("correlation", DEFAULT_CORRELATION))  # validate
        return kwargs
    raise ValueError(f"{name!r} is no world model name")


MODEL_PREFIXES: tuple[str, ...] = ("world-target:", "world-oracle-noisy:", "world-oracle-correlated:")
