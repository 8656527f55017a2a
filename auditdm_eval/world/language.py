"""The world's language: questions, answers, dense captions and edit commands, with their parsers.

Questions (:data:`QUESTION_TYPES`, canonical forms)::

    color                  what color is the large circle?
    shape                  what shape is the red object?
    size                   what size is the red circle?
    count                  how many objects | red objects | circles | red circles | large objects are there?
    position               where is the red circle?
    relation               is the red circle to the left of | to the right of | above | below the square?
    existence              is there a red circle? | is there an object in the top left?
    attribute_at_position  what color | shape | size is the object in the top left?
    clock                  what hour does the clock show?
    text                   what does the sign say?

A referring expression (``the large red circle``, ``the object in the top left``) must pick out
exactly one object, else the question does not apply to the scene (:func:`answer` gives None and
:func:`question_space` leaves it out). Answers are short canonical words that survive the
project's answer normalisation: a colour, a shape, ``small``/``large``, a digit, a position name
(``top left``, ``center``, ...), ``yes``/``no``, an hour ``1``..``12``, a sign's word.

Captions list every object with its attributes and cell (:func:`describe`); :func:`parse_caption`
reads them back, lenient to word order, synonyms and counts (``two red circles``), and fills what
a caption leaves out from a seed. Edit commands change an object's colour, shape, size, position,
a clock's hour or a sign's word, add an object or remove one (:func:`edit_space`,
:func:`parse_edit`, :func:`apply_edit`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace

from .scene import (
    CELL_OF_POSITION,
    COLORS,
    GRID,
    HOURS,
    PLAIN_SHAPES,
    POSITIONS,
    SHAPES,
    SIGN_WORDS,
    SIZES,
    SPECIAL_SHAPES,
    Scene,
    SceneObject,
    position_name,
    scene_rng,
)

QUESTION_TYPES: tuple[str, ...] = (
    "color", "shape", "size", "count", "position", "relation", "existence", "attribute_at_position", "clock", "text",
)
RELATIONS: dict[str, str] = {"left": "to the left of", "right": "to the right of", "above": "above", "below": "below"}
ATTRIBUTES: tuple[str, ...] = ("color", "shape", "size")
MAX_COUNT = GRID * GRID

ANSWER_SPACES: dict[str, tuple[str, ...]] = {
    "color": COLORS,
    "shape": SHAPES,
    "size": SIZES,
    "number": tuple(str(n) for n in range(MAX_COUNT + 1)),
    "position": POSITIONS,
    "yesno": ("yes", "no"),
    "hour": tuple(str(h) for h in HOURS),
    "word": SIGN_WORDS,
}

# ---------------------------------------------------------------------------------------------
# tokens

_TOKEN = re.compile(r"[a-z]+|\d+|[?,]")
_WORD_TOKEN = re.compile(r"[a-z]+|\d+")
_SYNONYMS = {
    "colour": "color", "colours": "colors", "centre": "center", "big": "large", "bigger": "large", "larger": "large",
    "huge": "large", "little": "small", "smaller": "small", "tiny": "small", "upper": "top", "lower": "bottom",
    "oclock": "oclock", "gray": "grey", "violet": "purple", "disc": "circle", "disk": "circle", "discs": "circles",
    "disks": "circles", "box": "square", "boxes": "squares", "rectangle": "square", "rectangles": "squares",
}
_NUMBER_WORDS = {w: i for i, w in enumerate(
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
)}
_PLURALS = {f"{s}s": s for s in SHAPES}
_OBJECT_NOUNS = {"object", "objects", "thing", "things", "shape", "shapes", "item", "items", "one"}
_ARTICLES = {"the", "a", "an", "this", "that", "any"}
_VERTICAL = {"top": 0, "bottom": 2}
_HORIZONTAL = {"left": 0, "right": 2}
_CENTERS = {"middle", "center"}
_POSITION_FILLER = {"corner", "side", "part", "of", "the", "image", "picture", "grid", "row", "cell"}


def tokenize(text: str) -> list[str]:
    """Words, digits, ``?`` and ``,`` of a text, lower case (the tokens of :data:`WORLD_VOCABULARY`)."""
    return _TOKEN.findall(text.lower())


def _words(text: str) -> list[str]:
    text = text.lower().replace("o'clock", " oclock").replace("o clock", " oclock")
    return [_SYNONYMS.get(w, w) for w in _WORD_TOKEN.findall(text)]


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _number(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return _NUMBER_WORDS.get(word)


def parse_position(words: list[str]) -> tuple[int, int] | None:
    """(row, col) of ``top left``, ``left top``, ``middle right``, ``center``, ``top`` (= top center), ..."""
    vertical = [w for w in words if w in _VERTICAL]
    horizontal = [w for w in words if w in _HORIZONTAL]
    centers = [w for w in words if w in _CENTERS]
    if any(w not in _VERTICAL and w not in _HORIZONTAL and w not in _CENTERS and w not in _POSITION_FILLER for w in words):
        return None
    if len(vertical) > 1 or len(horizontal) > 1 or len(centers) > 2 or not (vertical or horizontal or centers):
        return None
    if vertical and horizontal and centers:
        return None
    return (_VERTICAL[vertical[0]] if vertical else 1, _HORIZONTAL[horizontal[0]] if horizontal else 1)


# ---------------------------------------------------------------------------------------------
# referring expressions and queries


@dataclass(frozen=True)
class Ref:
    """A description of objects: any of size, colour, shape and cell (None: any)."""

    size: str | None = None
    color: str | None = None
    shape: str | None = None
    cell: tuple[int, int] | None = None

    def matches(self, obj: SceneObject) -> bool:
        return (
            (self.size is None or obj.size == self.size)
            and (self.color is None or obj.color == self.color)
            and (self.shape is None or obj.shape == self.shape)
            and (self.cell is None or obj.cell == self.cell)
        )

    def words(self, plural: bool = False) -> str:
        parts = [p for p in (self.size, self.color) if p]
        noun = self.shape or "object"
        parts.append(noun + "s" if plural else noun)
        text = " ".join(parts)
        if self.cell is not None:
            text += f" in the {position_name(*self.cell)}"
        return text

    def text(self) -> str:
        return "the " + self.words()

    def indefinite(self) -> str:
        words = self.words()
        return f"{_article(words)} {words}"


def resolve(ref: Ref, scene: Scene) -> SceneObject | None:
    """The one object ``ref`` picks out, or None when none or several match."""
    found = [o for o in scene.objects if ref.matches(o)]
    return found[0] if len(found) == 1 else None


def _parse_ref(words: list[str], plural: bool | None = False) -> Ref | None:
    """``the large red circle``, ``red object``, ``the clock in the top left`` (``plural`` None: either)."""
    i = 0
    while i < len(words) and words[i] in _ARTICLES:
        i += 1
    size = color = shape = None
    noun = None
    while i < len(words):
        w = words[i]
        i += 1
        if w in SIZES and size is None and noun is None:
            size = w
        elif w in COLORS and color is None and noun is None:
            color = w
        elif w in SHAPES and plural is not True:
            shape, noun = w, w
            break
        elif w in _PLURALS and plural is not False:
            shape, noun = _PLURALS[w], w
            break
        elif w in _OBJECT_NOUNS and (plural is None or (w.endswith("s") == plural)):
            noun = w
            break
        else:
            return None
    if noun is None:
        return None
    rest = words[i:]
    cell = None
    if rest:
        while rest and rest[0] in ("that", "which", "is", "are"):
            rest = rest[1:]
        if not rest or rest[0] not in ("in", "at", "on"):
            return None
        cell = parse_position(rest[1:])
        if cell is None:
            return None
    return Ref(size, color, shape, cell)


@dataclass(frozen=True)
class Query:
    """A parsed question: its type and what it refers to. ``text()`` is its canonical wording."""

    qtype: str
    ref: Ref | None = None  # the object asked about; the filter of count and existence questions
    ref2: Ref | None = None  # the second object of a relation
    relation: str | None = None  # left, right, above, below
    attribute: str | None = None  # color, shape or size for attribute_at_position

    @property
    def answer_kind(self) -> str:
        """The answer space the question draws from (a key of :data:`ANSWER_SPACES`)."""
        if self.qtype == "attribute_at_position":
            assert self.attribute is not None
            return self.attribute
        return {
            "color": "color", "shape": "shape", "size": "size", "count": "number", "position": "position",
            "relation": "yesno", "existence": "yesno", "clock": "hour", "text": "word",
        }[self.qtype]

    def text(self) -> str:
        ref = self.ref
        assert ref is not None
        if self.qtype in ATTRIBUTES:
            return f"what {self.qtype} is {ref.text()}?"
        if self.qtype == "attribute_at_position":
            return f"what {self.attribute} is {ref.text()}?"
        if self.qtype == "count":
            return f"how many {ref.words(plural=True)} are there?"
        if self.qtype == "position":
            return f"where is {ref.text()}?"
        if self.qtype == "relation":
            assert self.ref2 is not None and self.relation is not None
            return f"is {ref.text()} {RELATIONS[self.relation]} {self.ref2.text()}?"
        if self.qtype == "existence":
            return f"is there {ref.indefinite()}?"
        if self.qtype == "clock":
            return f"what hour does {ref.text()} show?"
        if self.qtype == "text":
            return f"what does {ref.text()} say?"
        raise ValueError(f"unknown question type {self.qtype!r}")


_PROMPT_PREFIXES = ("answer en", "question:", "question", "q:", "answer the question:", "answer the question")


def _question_line(text: str) -> str:
    text = text.strip().lower()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        asked = [line for line in lines if "?" in line]
        text = asked[-1] if asked else lines[-1]
    for prefix in _PROMPT_PREFIXES:
        if text.startswith(prefix + " ") or text.startswith(prefix) and prefix.endswith(":"):
            text = text[len(prefix):].strip()
    if "?" in text:
        text = text[: text.index("?")]
    return text


def parse_question(text: str) -> Query | None:
    """The query a question asks, or None when the world does not understand it."""
    words = _words(_question_line(text))
    if not words:
        return None
    # trailing "in the image", "in the picture"
    if len(words) > 3 and words[-1] in ("image", "picture", "scene", "photo") and words[-3] in ("in", "on"):
        words = words[:-3]
    for parse in (_parse_attribute, _parse_count, _parse_where, _parse_relation, _parse_existence, _parse_clock, _parse_text):
        query = parse(words)
        if query is not None:
            return query
    return None


def _attribute_query(attribute: str, ref: Ref | None) -> Query | None:
    if ref is None:
        return None
    if ref.cell is not None and ref.size is None and ref.color is None and ref.shape is None:
        return Query("attribute_at_position", ref, attribute=attribute)
    return Query(attribute, ref)


def _parse_attribute(words: list[str]) -> Query | None:
    # what color is the X | what is the color of the X | which color is the X | what color does the X have
    if len(words) >= 4 and words[0] in ("what", "which") and words[1] in ATTRIBUTES and words[2] in ("is", "s"):
        return _attribute_query(words[1], _parse_ref(words[3:]))
    if len(words) >= 6 and words[:3] == ["what", "is", "the"] and words[3] in ATTRIBUTES and words[4] == "of":
        return _attribute_query(words[3], _parse_ref(words[5:]))
    if len(words) >= 6 and words[0] == "what" and words[1] in ATTRIBUTES and words[2] == "does" and words[-1] == "have":
        return _attribute_query(words[1], _parse_ref(words[3:-1]))
    return None


def _parse_count(words: list[str]) -> Query | None:
    if words[:2] != ["how", "many"]:
        if words[:3] == ["what", "is", "the"] and words[3:5] == ["number", "of"]:
            body = words[5:]
        elif words[:2] == ["count", "the"]:
            body = words[2:]
        else:
            return None
    else:
        body = words[2:]
    for tail in (["can", "you", "see"], ["do", "you", "see"], ["does", "it", "show"]):
        if body[-len(tail):] == tail:
            body = body[: -len(tail)]
    body = _strip_tail(body, {"are", "there", "is", "shown", "visible", "present"})
    if body and body[0] == "of":
        body = body[1:]
    ref = _parse_ref(body, plural=True)
    if ref is None:
        ref = _parse_ref(body, plural=None)  # "how many object are there"
    return None if ref is None else Query("count", ref)


def _parse_where(words: list[str]) -> Query | None:
    if words[:2] in (["where", "is"], ["where", "s"]):
        body = words[2:]
    elif words[:4] == ["in", "which", "cell", "is"] or words[:4] == ["what", "position", "is", "the"]:
        body = words[4:] if words[0] == "in" else words[3:]
        if body and body[-1] == "in":
            body = body[:-1]
    else:
        return None
    if body[-1:] == ["located"]:
        body = body[:-1]
    ref = _parse_ref(body)
    return None if ref is None else Query("position", ref)


_RELATION_WORDS: list[tuple[list[str], str]] = [
    (["to", "the", "left", "of"], "left"), (["on", "the", "left", "of"], "left"), (["left", "of"], "left"),
    (["to", "the", "right", "of"], "right"), (["on", "the", "right", "of"], "right"), (["right", "of"], "right"),
    (["above"], "above"), (["over"], "above"), (["below"], "below"), (["under"], "below"), (["beneath"], "below"),
]


def _parse_relation(words: list[str]) -> Query | None:
    if words[:1] != ["is"] or words[1:2] == ["there"]:
        return None
    body = words[1:]
    for start in range(1, len(body)):
        for phrase, relation in _RELATION_WORDS:
            if body[start : start + len(phrase)] == phrase:
                first = _parse_ref(body[:start])
                second = _parse_ref(body[start + len(phrase):])
                if first is not None and second is not None:
                    return Query("relation", first, second, relation)
    return None


def _parse_existence(words: list[str]) -> Query | None:
    if words[:2] == ["is", "there"]:
        body = words[2:]
    elif words[:3] == ["are", "there", "any"]:
        body = words[3:]
    elif words[:4] == ["does", "the", "image", "contain"] or words[:4] == ["does", "the", "picture", "show"]:
        body = words[4:]
    else:
        return None
    ref = _parse_ref(body, plural=None)
    return None if ref is None else Query("existence", ref)


def _parse_clock(words: list[str]) -> Query | None:
    # what hour does the X show | what time does the X show | what time is it on the X | what hour is the X showing
    if words[:1] != ["what"] or words[1:2] not in (["hour"], ["time"]):
        return None
    body = words[2:]
    if body[:3] == ["is", "it", "on"] or body[:3] == ["is", "shown", "on"]:
        ref = _parse_ref(body[3:])
    elif body[:1] in (["does"], ["is"]) and body[-1:] in (["show"], ["showing"], ["say"], ["read"], ["indicate"]):
        ref = _parse_ref(body[1:-1])
    else:
        return None
    return None if ref is None else Query("clock", ref)


def _parse_text(words: list[str]) -> Query | None:
    # what does the X say | what word is on the X | what is written on the X | what does the X read
    if words[:2] == ["what", "does"] and words[-1:] in (["say"], ["read"]):
        ref = _parse_ref(words[2:-1])
    elif words[:2] in (["what", "word"], ["which", "word"], ["what", "text"]) and words[2:4] in (["is", "on"], ["is", "written"]):
        body = words[4:]
        if body[:1] == ["on"]:
            body = body[1:]
        ref = _parse_ref(body)
    elif words[:4] == ["what", "is", "written", "on"]:
        ref = _parse_ref(words[4:])
    else:
        return None
    return None if ref is None else Query("text", ref)


def answer(query: Query, scene: Scene) -> str | None:
    """The true answer of ``query`` about ``scene``; None when the question does not apply to it."""
    qtype, ref = query.qtype, query.ref
    if ref is None:
        return None
    if qtype == "count":
        return str(scene.count(ref.matches))
    if qtype == "existence":
        return "yes" if scene.count(ref.matches) else "no"
    obj = resolve(ref, scene)
    if obj is None:
        return None
    if qtype in ATTRIBUTES:
        return getattr(obj, qtype)
    if qtype == "attribute_at_position":
        return getattr(obj, query.attribute or "")
    if qtype == "position":
        return obj.position
    if qtype == "clock":
        return str(obj.hour) if obj.shape == "clock" else None
    if qtype == "text":
        return obj.word if obj.shape == "sign" else None
    if qtype == "relation":
        other = resolve(query.ref2, scene) if query.ref2 is not None else None
        if other is None or other is obj:
            return None
        holds = {
            "left": obj.col < other.col, "right": obj.col > other.col,
            "above": obj.row < other.row, "below": obj.row > other.row,
        }[query.relation or ""]
        return "yes" if holds else "no"
    return None


def answer_question(question: str, scene: Scene) -> str | None:
    query = parse_question(question)
    return None if query is None else answer(query, scene)


# ---------------------------------------------------------------------------------------------
# the question space


def unique_refs(obj: SceneObject, scene: Scene) -> list[Ref]:
    """Every attribute description (a non-empty subset of size, colour, shape) that picks out ``obj`` alone."""
    refs = []
    for k in (1, 2, 3):
        for subset in itertools.combinations(("size", "color", "shape"), k):
            ref = Ref(**{name: getattr(obj, name) for name in subset})
            if resolve(ref, scene) is obj:
                refs.append(ref)
    return refs


def shortest_refs(refs: list[Ref]) -> list[Ref]:
    if not refs:
        return []
    shortest = min(_ref_length(r) for r in refs)
    return [r for r in refs if _ref_length(r) == shortest]


def canonical_ref(obj: SceneObject, scene: Scene) -> Ref:
    """One name for ``obj``: its shortest unique description (shape first, then colour), else its cell."""
    refs = unique_refs(obj, scene)
    order = {"shape": 0, "color": 1, "size": 2}
    if refs:
        return min(refs, key=lambda r: (_ref_length(r), sorted(order[a] for a in ("size", "color", "shape") if getattr(r, a))))
    return Ref(cell=obj.cell)


def _ref_length(ref: Ref) -> int:
    return sum(x is not None for x in (ref.size, ref.color, ref.shape, ref.cell))


def count_filters() -> list[Ref]:
    """What count questions ask for: all objects, by colour, by shape, by colour and shape, by size."""
    filters = [Ref()]
    filters += [Ref(color=c) for c in COLORS]
    filters += [Ref(shape=s) for s in SHAPES]
    filters += [Ref(color=c, shape=s) for c in COLORS for s in SHAPES]
    filters += [Ref(size=s) for s in SIZES]
    return filters


def existence_filters() -> list[Ref]:
    filters = [Ref(color=c) for c in COLORS]
    filters += [Ref(shape=s) for s in SHAPES]
    filters += [Ref(color=c, shape=s) for c in COLORS for s in SHAPES]
    filters += [Ref(cell=(r, c)) for r in range(GRID) for c in range(GRID)]
    return filters


def query_space(scene: Scene) -> list[Query]:
    """Every valid query about ``scene`` in canonical form (each has an answer)."""
    queries: list[Query] = []
    refs = {id(obj): unique_refs(obj, scene) for obj in scene.objects}
    shortest = {key: shortest_refs(found) for key, found in refs.items()}
    for obj in scene.objects:
        for ref in refs[id(obj)]:
            for attribute in ATTRIBUTES:
                if getattr(ref, attribute) is None:
                    queries.append(Query(attribute, ref))
            queries.append(Query("position", ref))
            if obj.shape == "clock":
                queries.append(Query("clock", ref))
            if obj.shape == "sign":
                queries.append(Query("text", ref))
        at = Ref(cell=obj.cell)
        for attribute in ATTRIBUTES:
            queries.append(Query("attribute_at_position", at, attribute=attribute))
        if obj.shape == "clock":
            queries.append(Query("clock", Ref(shape="clock", cell=obj.cell)))
        if obj.shape == "sign":
            queries.append(Query("text", Ref(shape="sign", cell=obj.cell)))
    for a, b in itertools.permutations(scene.objects, 2):
        for ra in shortest[id(a)]:
            for rb in shortest[id(b)]:
                for relation in RELATIONS:
                    queries.append(Query("relation", ra, rb, relation))
    queries += [Query("count", f) for f in count_filters()]
    queries += [Query("existence", f) for f in existence_filters()]
    return [q for q in dict.fromkeys(queries) if answer(q, scene) is not None]


def question_space(scene: Scene) -> list[str]:
    """Every valid instantiated question about ``scene`` (the auditor's action space), canonical wording."""
    return [q.text() for q in query_space(scene)]


def questions_by_type(scene: Scene) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {t: [] for t in QUESTION_TYPES}
    for q in query_space(scene):
        out[q.qtype].append(q.text())
    return out


# ---------------------------------------------------------------------------------------------
# captions


@dataclass
class ObjectSpec:
    """An object as a caption or an add command gives it: what is not said is None."""

    color: str | None = None
    shape: str | None = None
    size: str | None = None
    cell: tuple[int, int] | None = None
    hour: int | None = None
    word: str | None = None
    count: int = 1
    text: str = field(default="", compare=False)


def _object_phrase(obj: SceneObject) -> str:
    if obj.shape == "clock":
        words = f"{obj.color} clock showing {obj.hour}"
    elif obj.shape == "sign":
        words = f"{obj.color} sign saying {obj.word}"
    else:
        words = f"{obj.size} {obj.color} {obj.shape}"
    return f"{_article(words)} {words} in the {obj.position}"


def describe(scene: Scene) -> str:
    """The canonical dense caption: every object with its attributes and cell, in reading order."""
    if not scene.objects:
        return "nothing"
    return ", ".join(_object_phrase(o) for o in scene.objects)


_SPLIT_BEFORE = {"a", "an"} | set(_NUMBER_WORDS) - {"zero"}
_HOUR_MARKERS = {"showing", "shows", "show", "at", "reading", "reads", "pointing", "to", "says"}
_EMPTY = {"nothing", "empty", "blank"}


def _chunks(text: str) -> list[list[str]]:
    text = text.lower().replace("o'clock", " oclock").replace("o clock", " oclock")
    pieces = re.split(r"[,;.\n]|\band\b|\bnext to\b|\bbeside\b|\bwhile\b|\bplus\b", text)
    chunks: list[list[str]] = []
    for piece in pieces:
        words = [_SYNONYMS.get(w, w) for w in _WORD_TOKEN.findall(piece)]
        current: list[str] = []
        for i, w in enumerate(words):
            starts = (w in _SPLIT_BEFORE or w.isdigit()) and not (i and words[i - 1] in _HOUR_MARKERS)
            if starts and i + 1 < len(words) and words[i + 1] == "oclock":
                starts = False
            if w == "one" and i and (words[i - 1] in COLORS or words[i - 1] in SIZES):
                starts = False  # "a red one": a noun, not a count
            if starts and current:
                chunks.append(current)
                current = []
            current.append(w)
        if current:
            chunks.append(current)
    return chunks


def _chunk_spec(words: list[str]) -> ObjectSpec | None:
    spec = ObjectSpec(text=" ".join(words))
    noun = False
    position_words: list[str] = []
    for i, w in enumerate(words):
        number = _number(w)
        if i == 0 and number is not None:
            spec.count = number
        elif w in SIZES:
            spec.size = spec.size or w
        elif w in COLORS:
            spec.color = spec.color or w
        elif w in SHAPES or w in _PLURALS:
            spec.shape = spec.shape or _PLURALS.get(w, w)
            noun = True
        elif w in _OBJECT_NOUNS:
            noun = True
        elif w in SIGN_WORDS:
            spec.word = spec.word or w
        elif number is not None and 1 <= number <= 12 and i > 0:
            spec.hour = spec.hour or number
        elif w in _VERTICAL or w in _HORIZONTAL or w in _CENTERS:
            position_words.append(w)
    if not noun:
        return None
    if position_words:
        spec.cell = parse_position(position_words)
        if spec.cell is None:
            raise ValueError(f"cannot tell which cell {' '.join(position_words)!r} is in {spec.text!r}: use one of {', '.join(POSITIONS)}")
    if spec.shape == "clock":
        spec.word = None
    elif spec.shape == "sign":
        spec.hour = None
    elif spec.shape in PLAIN_SHAPES:
        spec.hour = spec.word = None
    if spec.count < 1:
        return None
    return spec


def caption_specs(text: str) -> list[ObjectSpec]:
    """The objects a caption describes, attributes it does not give left None.

    Raises ValueError when the caption names a cell that cannot be read.
    """
    specs = []
    for chunk in _chunks(text):
        spec = _chunk_spec(chunk)
        if spec is not None:
            specs.append(spec)
    return specs


def _fill(spec: ObjectSpec, rng, cell: tuple[int, int]) -> SceneObject:
    """A complete object from a spec, drawing what it leaves out from ``rng`` (always the same draws)."""
    draws = (int(rng.integers(len(COLORS))), int(rng.integers(len(PLAIN_SHAPES))), int(rng.integers(len(SIZES))),
             int(rng.integers(len(HOURS))), int(rng.integers(len(SIGN_WORDS))))
    shape = spec.shape or ("sign" if spec.word else "clock" if spec.hour else PLAIN_SHAPES[draws[1]])
    color = spec.color or COLORS[draws[0]]
    size = "large" if shape in SPECIAL_SHAPES else (spec.size or SIZES[draws[2]])
    hour = (spec.hour or HOURS[draws[3]]) if shape == "clock" else None
    word = (spec.word or SIGN_WORDS[draws[4]]) if shape == "sign" else None
    return SceneObject(color, shape, size, cell[0], cell[1], hour, word)


def complete_specs(specs: list[ObjectSpec], seed: int = 0, scene: Scene | None = None) -> Scene:
    """Place ``specs`` (added to ``scene``, else to an empty grid), filling what they leave out from ``seed``."""
    base = scene or Scene()
    rng = scene_rng(seed, len(base.objects), 0x5CE7E)
    expanded = [s for s in specs for _ in range(s.count)]
    taken = {o.cell: o for o in base.objects}
    for s in specs:
        if s.count > 1 and s.cell is not None:
            raise ValueError(f"{s.text!r}: {s.count} objects cannot share the {position_name(*s.cell)} (one object per cell)")
    placed: dict[int, tuple[int, int]] = {}
    for i, s in enumerate(expanded):
        if s.cell is None:
            continue
        if s.cell in taken:
            who = taken[s.cell]
            what = _object_phrase(who) if isinstance(who, SceneObject) else repr(who)
            raise ValueError(f"{s.text!r}: the {position_name(*s.cell)} already holds {what}; one object per cell")
        taken[s.cell] = s.text
        placed[i] = s.cell
    free = [(r, c) for r in range(GRID) for c in range(GRID) if (r, c) not in taken]
    if len(expanded) - len(placed) > len(free):
        raise ValueError(f"{len(base.objects) + len(expanded)} objects do not fit on a {GRID}x{GRID} grid (one object per cell)")
    objects = list(base.objects)
    for i, s in enumerate(expanded):
        if i in placed:
            cell = placed[i]
        else:
            cell = free.pop(int(rng.integers(len(free))))
        objects.append(_fill(s, rng, cell))
    return Scene(tuple(objects))


def caption_to_scene(text: str, seed: int = 0) -> Scene:
    """The scene a caption describes; what it leaves out is filled from ``seed``. Raises ValueError if unusable."""
    words = _words(text)
    filler = _EMPTY | _ARTICLES | {"image", "picture", "scene", "of", "grid", "with", "is", "there"}
    if words and set(words) <= filler and set(words) & _EMPTY:
        return Scene()
    specs = caption_specs(text)
    if not specs:
        raise ValueError(
            f"the caption {text!r} names no object: describe each object with a shape "
            f"({', '.join(SHAPES)}) or the word 'object', e.g. '{_EXAMPLE_CAPTION}'"
        )
    return complete_specs(specs, seed)


_EXAMPLE_CAPTION = "a large red circle in the top left, a small blue square in the center"


def parse_caption(text: str, seed: int = 0) -> Scene | None:
    """The scene a caption describes (attributes and cells it leaves out filled from ``seed``), or None."""
    try:
        return caption_to_scene(text, seed)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# edit commands

EDIT_ACTIONS: tuple[str, ...] = ("color", "shape", "size", "move", "add", "remove", "hour", "word")


@dataclass(frozen=True)
class Edit:
    """One edit: ``action`` on the object ``ref`` picks out, to ``value`` (or ``spec`` for add)."""

    action: str
    ref: Ref | None = None
    value: str | None = None  # new colour, shape, size, position name, hour (as text) or word
    spec: ObjectSpec | None = field(default=None, compare=False, hash=False)

    def text(self) -> str:
        if self.action == "add":
            spec = self.spec or ObjectSpec()
            if spec.shape == "clock":
                words = " ".join(w for w in (spec.color, "clock") if w)
                if spec.hour:
                    words += f" showing {spec.hour}"
            elif spec.shape == "sign":
                words = " ".join(w for w in (spec.color, "sign") if w)
                if spec.word:
                    words += f" saying {spec.word}"
            else:
                words = " ".join(w for w in (spec.size, spec.color, spec.shape or "object") if w)
            where = f" in the {position_name(*spec.cell)}" if spec.cell else ""
            return f"add {_article(words)} {words}{where}"
        assert self.ref is not None
        ref = self.ref.text()
        if self.action in ("color", "size"):
            return f"make {ref} {self.value}"
        if self.action == "shape":
            return f"turn {ref} into {_article(self.value or 'a')} {self.value}"
        if self.action == "move":
            return f"move {ref} to the {self.value}"
        if self.action == "remove":
            return f"remove {ref}"
        if self.action == "hour":
            return f"make {ref} show {self.value}"
        if self.action == "word":
            return f"make {ref} say {self.value}"
        raise ValueError(f"unknown edit action {self.action!r}")


_REMOVE = {"remove", "delete", "erase", "eliminate"}
_ADD = {"add", "insert", "draw", "create"}
_MOVE = {"move", "shift", "put", "place", "relocate", "slide"}
_CHANGE = {"make", "turn", "change", "set", "transform", "convert", "replace", "paint", "color", "recolor", "swap"}
_CONNECTORS = {"to", "into", "be", "a", "an", "with", "so", "it", "is", "that", "becomes", "become", "look", "like", "in"}


def _strip_tail(words: list[str], drop: set[str]) -> list[str]:
    while words and words[-1] in drop:
        words = words[:-1]
    return words


def parse_edit(text: str) -> Edit | None:
    """The edit a command asks for, or None when the world does not understand it."""
    words = _words(text)
    if words[:1] == ["please"]:
        words = words[1:]
    if len(words) < 2:
        return None
    verb, rest = words[0], words[1:]
    if verb in _REMOVE or words[:2] == ["take", "away"] or words[:2] == ["take", "out"]:
        ref = _parse_ref(rest if verb in _REMOVE else words[2:])
        return None if ref is None else Edit("remove", ref)
    if verb in _ADD or (verb in ("put", "place") and rest[0] in ("a", "an", "one")):
        specs = caption_specs(" ".join(rest))
        if len(specs) != 1 or specs[0].count != 1:
            return None
        return Edit("add", spec=specs[0])
    if verb in _MOVE:
        for i in range(len(rest) - 1, 0, -1):
            if rest[i] in ("to", "into", "in", "at", "on") and (cell := parse_position(rest[i + 1:])) is not None:
                ref = _parse_ref(rest[:i])
                return None if ref is None else Edit("move", ref, position_name(*cell))
        return None
    if verb in ("shrink", "enlarge", "grow"):
        ref = _parse_ref(rest)
        return None if ref is None else Edit("size", ref, "small" if verb == "shrink" else "large")
    if verb not in _CHANGE:
        return None
    # change the color of X to C | change the word on X to W | set the time on X to H
    if rest[:3] == ["the", "color", "of"] and "to" in rest:
        k = len(rest) - 1 - rest[::-1].index("to")
        ref = _parse_ref(rest[3:k])
        value = rest[k + 1:]
        if ref is not None and len(value) == 1 and value[0] in COLORS:
            return Edit("color", ref, value[0])
        return None
    if rest[:2] in (["the", "word"], ["the", "text"], ["the", "time"], ["the", "hour"]) and rest[2:3] in (["on"], ["of"]) and "to" in rest:
        k = len(rest) - 1 - rest[::-1].index("to")
        ref = _parse_ref(rest[3:k])
        value = _strip_tail(rest[k + 1:], {"oclock"})
        if ref is None or len(value) != 1:
            return None
        return _value_edit(ref, value[0])
    last = words[-1]
    body = _strip_tail(rest[:-1], _CONNECTORS | {"show", "showing", "say", "saying", "read", "reads", "point", "at", "the", "word", "time"})
    if last == "oclock" and len(rest) >= 2:
        last, body = rest[-2], _strip_tail(rest[:-2], _CONNECTORS | {"show", "showing", "point", "at", "read", "the", "time"})
    ref = _parse_ref(body)
    if ref is None:
        return None
    if verb in ("paint", "color", "recolor") and last not in COLORS:
        return None
    return _value_edit(ref, last)


def _value_edit(ref: Ref, value: str) -> Edit | None:
    if value in COLORS:
        return Edit("color", ref, value)
    if value in SIZES:
        return Edit("size", ref, value)
    if value in SHAPES:
        return Edit("shape", ref, value)
    if value in SIGN_WORDS:
        return Edit("word", ref, value)
    number = _number(value)
    if number is not None and number in HOURS:
        return Edit("hour", ref, str(number))
    return None


def apply_edit(scene: Scene, edit: Edit, seed: int = 0) -> Scene:
    """The scene after ``edit``; what it leaves out (an added object's colour, a new clock's hour) comes from ``seed``.

    Raises ValueError, naming the problem, when the edit cannot apply (no such object, several, a
    taken cell, a full grid, an hour for something that is no clock).
    """
    if edit.action == "add":
        spec = replace(edit.spec or ObjectSpec(), count=1)
        return complete_specs([spec], seed, scene)
    ref = edit.ref
    if ref is None:
        raise ValueError(f"the {edit.action} edit names no object")
    found = [o for o in scene.objects if ref.matches(o)]
    if not found:
        raise ValueError(f"no object is {ref.text()} (the scene has {describe(scene)})")
    if len(found) > 1:
        raise ValueError(f"{len(found)} objects are {ref.text()}: name one by colour, shape, size or position")
    obj = found[0]
    rng = scene_rng(seed, len(scene.objects), 0xED17)
    if edit.action == "remove":
        return scene.without(obj)
    if edit.action == "color":
        new = obj.replace(color=edit.value)
    elif edit.action == "size":
        if obj.shape in SPECIAL_SHAPES:
            raise ValueError(f"{ref.text()} is a {obj.shape}, and {obj.shape}s come in one size (large)")
        new = obj.replace(size=edit.value)
    elif edit.action == "shape":
        shape = edit.value
        if shape == obj.shape:
            new = obj
        elif shape == "clock":
            new = obj.replace(shape="clock", size="large", hour=HOURS[int(rng.integers(len(HOURS)))], word=None)
        elif shape == "sign":
            new = obj.replace(shape="sign", size="large", word=SIGN_WORDS[int(rng.integers(len(SIGN_WORDS)))], hour=None)
        else:
            new = obj.replace(shape=shape, hour=None, word=None)
    elif edit.action == "move":
        row, col = CELL_OF_POSITION[edit.value or ""]
        other = scene.at(row, col)
        if other is not None and other is not obj:
            raise ValueError(f"the {edit.value} already holds {_object_phrase(other)}: move or remove it first")
        new = obj.replace(row=row, col=col)
    elif edit.action == "hour":
        if obj.shape != "clock":
            raise ValueError(f"{ref.text()} is a {obj.shape}, not a clock: only a clock shows an hour")
        new = obj.replace(hour=int(edit.value or 0))
    elif edit.action == "word":
        if obj.shape != "sign":
            raise ValueError(f"{ref.text()} is a {obj.shape}, not a sign: only a sign says a word")
        new = obj.replace(word=edit.value)
    else:
        raise ValueError(f"unknown edit action {edit.action!r}")
    return scene.without(obj).with_object(new)


def edit_scene(scene: Scene, command: str, seed: int = 0) -> Scene:
    """Parse and apply an edit command; ValueError names what was wrong."""
    edit = parse_edit(command)
    if edit is None:
        raise ValueError(
            f"cannot read the edit command {command!r}: use one of {', '.join(repr(e) for e in EDIT_EXAMPLES)}"
        )
    return apply_edit(scene, edit, seed)


EDIT_EXAMPLES = (
    "make the red circle blue", "turn the red circle into a square", "make the red circle small",
    "move the red circle to the top left", "add a large green triangle in the center", "remove the red circle",
    "make the clock show 3", "make the sign say stop",
)


def edit_space(scene: Scene) -> list[str]:
    """Every valid edit command for ``scene`` in canonical wording (one name per object)."""
    edits: list[Edit] = []
    free = scene.free_cells()
    for obj in scene.objects:
        ref = canonical_ref(obj, scene)
        edits += [Edit("color", ref, c) for c in COLORS if c != obj.color]
        edits += [Edit("shape", ref, s) for s in SHAPES if s != obj.shape]
        if obj.shape in PLAIN_SHAPES:
            edits.append(Edit("size", ref, "small" if obj.size == "large" else "large"))
        edits += [Edit("move", ref, position_name(*cell)) for cell in free]
        edits.append(Edit("remove", ref))
        if obj.shape == "clock":
            edits += [Edit("hour", ref, str(h)) for h in HOURS if h != obj.hour]
        if obj.shape == "sign":
            edits += [Edit("word", ref, w) for w in SIGN_WORDS if w != obj.word]
    for cell in free:
        for size in SIZES:
            for color in COLORS:
                for shape in PLAIN_SHAPES:
                    edits.append(Edit("add", spec=ObjectSpec(color, shape, size, cell)))
        for color in COLORS:
            for shape in SPECIAL_SHAPES:
                edits.append(Edit("add", spec=ObjectSpec(color, shape, None, cell)))
    return [e.text() for e in edits]


# ---------------------------------------------------------------------------------------------
# vocabulary

_TEMPLATE_WORDS = (
    "what is the are there how many where to of above below a an in does show say hour object objects "
    "make turn into move add remove showing saying nothing left right top middle bottom center "
    "color shape size"
)
WORLD_VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        set(_TEMPLATE_WORDS.split())
        | set(COLORS) | set(SHAPES) | {f"{s}s" for s in SHAPES} | set(SIZES) | set(SIGN_WORDS)
        | set(ANSWER_SPACES["number"]) | set(ANSWER_SPACES["hour"]) | {"yes", "no"}
        | {w for p in POSITIONS for w in p.split()}
        | {"?", ","}
    )
)
"""Every token (:func:`tokenize`) that the world's questions, answers, captions and edit commands contain."""
