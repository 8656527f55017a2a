import pytest

from auditdm_eval.judge import REWARDS, Judge, consensus_of
from auditdm_eval.matching import EmbeddingMatcher, ExactMatcher, build_matcher, normalize_answer
from auditdm_eval.records import Answer


def answer(text, model="m", error=None):
    return Answer(model, text if error is None else "", normalize_answer(text) if error is None else "", error)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Two.", "2"),
        ("The red car", "red car"),
        ("  YES ", "yes"),
        ("dont know", "don't know"),
        ("1,000", "1000"),
        ("3.5 cm", "3.5 cm"),
        ("a dog, sitting!", "dog sitting"),
        ("", ""),
    ],
)
def test_vqa_normalisation(raw, expected):
    assert normalize_answer(raw) == expected


def test_exact_matcher_never_matches_empty_answers():
    assert ExactMatcher().same([("", ""), ("Two", "2"), ("cat", "dog")]) == [False, True, False]


def test_embedding_matcher_uses_exact_first_and_a_strict_threshold():
    matcher = EmbeddingMatcher(threshold=0.9)
    same = matcher.same([("two", "2"), ("a small dog", "small dog"), ("two", "three"), ("sofa", "couch"), ("red", "")])
    assert same[0] and same[1]
    assert not same[2], "number words are close in embedding space: they must not match"
    assert not same[4]
    assert isinstance(same[3], bool)


def test_unknown_matcher_names_the_choices():
    with pytest.raises(ValueError, match="exact"):
        build_matcher("levenshtein")


def test_consensus_groups_equivalent_answers_and_counts_errors_in_the_denominator():
    refs = [answer("Three"), answer("3"), answer("four"), answer("x", error="RuntimeError: boom")]
    consensus = consensus_of(refs, ExactMatcher(), "how many?")
    assert consensus.answer == "Three"
    assert consensus.size == 2
    assert consensus.agreement == pytest.approx(0.5)


@pytest.mark.parametrize(
    "target, refs, rule, failure, agrees",
    [
        ("2", ["3", "three"], "unanimous", True, True),  # ensemble agrees, target differs
        ("three", ["3", "three"], "unanimous", False, True),  # target agrees
        ("2", ["3", "4"], "unanimous", False, False),  # no consensus: not answerable
        ("2", ["3", "3", "4"], "unanimous", False, False),
        ("2", ["3", "3", "4"], "majority", True, True),
        ("2", ["3", "4"], "majority", False, False),  # 1 of 2 is no majority
        ("", ["3", "3"], "unanimous", False, True),  # an empty target answer is never a failure
    ],
)
def test_failure_decision(target, refs, rule, failure, agrees):
    verdict = Judge(ExactMatcher(), rule).judge(answer(target), [answer(r) for r in refs], "q")
    assert verdict.is_failure is failure
    assert verdict.ensemble_agrees is agrees
    assert verdict.reward == (1.0 if failure else 0.0)


def test_single_reference_is_model_comparison():
    verdict = Judge(ExactMatcher()).judge(answer("cat"), [answer("dog")], "what animal?")
    assert verdict.consensus_answer == "dog" and verdict.is_failure


def test_a_reference_that_raised_breaks_unanimity():
    refs = [answer("3"), answer("", error="CUDA OOM")]
    verdict = Judge(ExactMatcher(), "unanimous").judge(answer("2"), refs, "q")
    assert not verdict.ensemble_agrees and not verdict.is_failure


def test_graded_reward_scales_with_agreement():
    reward = REWARDS.get("graded")
    assert reward(judged=False, target_matches=False, agreement=2 / 3) == pytest.approx(2 / 3)
    assert reward(judged=True, target_matches=True, agreement=1.0) == 0.0
    assert REWARDS.get("binary")(judged=False, target_matches=False, agreement=2 / 3) == 0.0
    with pytest.raises(ValueError, match="binary, graded"):
        Judge(ExactMatcher(), reward="nope")


def test_unknown_agreement_rule():
    with pytest.raises(ValueError, match="majority"):
        Judge(ExactMatcher(), "most")


def test_judge_matcher_asks_a_real_model_only_when_exact_match_fails(tiny_paths):
    from model_adapters import load_model

    from auditdm_eval.matching import JudgeMatcher

    adapter = load_model("tiny-gemma3")
    calls = []
    original = adapter.generate
    adapter.generate = lambda requests, **kw: calls.append(len(requests)) or original(requests, **kw)
    matcher = JudgeMatcher(adapter)
    result = matcher.same([("Two", "2"), ("a cat", "a kitten"), ("", "dog")], questions=["q"] * 3)
    assert result[0] is True and result[2] is False
    assert isinstance(result[1], bool)
    assert calls == [1], "only the pair that exact match could not settle reaches the judge"
