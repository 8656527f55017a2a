import pytest

from auditdm_eval.failure_types import OTHER, TYPE_NAMES, EmbeddingTypeClassifier, classify, classify_all

CASES = {
    "clock reading": "What time does the clock on the tower show?",
    "counting": "How many zebras are drinking water?",
    "small text recognition": "What does the label on the bottle say?",
    "sign understanding": "What does the road sign tell drivers to do?",
    "hallucination avoidance": "Is there a dog in the picture?",
    "color recognition": "What colour is the umbrella?",
    "size comparison": "Which animal is bigger, the cat or the horse?",
    "material recognition": "What is the bench made of?",
    "shape recognition": "What shape is the table?",
    "orientation": "Which way is the bus facing?",
    "spatial relationship": "What is to the left of the laptop?",
    "emotion and atmosphere": "What is the weather like in this photo?",
    "action recognition": "What is the man doing with the frisbee?",
    "object relationship": "What is the girl holding?",
    "scene recognition": "What kind of room is this?",
    "species and category recognition": "What breed of dog is this?",
    "person attributes": "How old is the woman?",
    "small object detection": "What is the tiny object on the shelf?",
    "world knowledge": "Why do people use this device?",
    "distraction avoidance": "Is that a real cat or a toy?",
    "object recognition": "What is this?",
    "attribute verification": "Was the photo taken at night?",
}


def test_every_failure_type_has_a_covering_question():
    assert set(CASES) | {OTHER} == set(TYPE_NAMES), "a new type needs a test question"
    assert len(TYPE_NAMES) >= 21, "the paper finds 20+ types"


@pytest.mark.parametrize("expected, question", sorted(CASES.items()))
def test_rules_classify_the_fixed_questions(expected, question):
    answers = ["no"] if expected == "distraction avoidance" else ["yes"]
    assert classify(question, answers) == expected


def test_consensus_no_to_a_yes_no_question_is_hallucination():
    assert classify("Can you see a bicycle on the pavement?", ["no"]) == "hallucination avoidance"
    assert classify("Can you see a bicycle on the pavement?", ["yes"]) == "attribute verification"


def test_unmatched_questions_are_other_and_the_embedding_fallback_places_them():
    assert classify("Tell me about it") == OTHER
    fallback = EmbeddingTypeClassifier(threshold=0.2)
    placed = classify_all(["Tell me about the clocks hands position", "How many?"], [[], []], fallback)
    assert placed[1] == "counting"
    assert placed[0] in TYPE_NAMES and placed[0] != OTHER
