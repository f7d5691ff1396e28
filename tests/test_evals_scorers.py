"""Scorers on tiny hand-computed examples, plus brute-force cross-checks on random inputs."""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from itertools import combinations

import pytest
from pydantic import BaseModel

from evals import published
from evals.scorers import (
    bullet_recall,
    citation_valid_rate,
    grouping_accuracy,
    grouping_f1,
    issue_dismissed_rate,
    key_tokens,
    leaked_secrets,
    mrr,
    no_issue_inconclusive_rate,
    pairwise_prf,
    rate,
    recall_at_k,
    schema_valid_rate,
)

# truth groups: A={0,1} B={2,3} C={4}; pred groups: 1={0,1} 2={2} 3={3,4}
TRUTH = ["A", "A", "B", "B", "C"]
PRED = [1, 1, 2, 3, 3]


# ---------------------------------------------------------------- grouping


def test_grouping_accuracy_counts_only_exactly_recovered_groups() -> None:
    # A is recovered exactly (2 messages); B is split; C shares its predicted group with a B line.
    assert grouping_accuracy(PRED, TRUTH) == pytest.approx(2 / 5)


def test_grouping_accuracy_perfect_and_label_names_do_not_matter() -> None:
    assert grouping_accuracy(["x", "x", "y", "z", "w"], TRUTH) == 0.6  # A and C exact, B split
    assert grouping_accuracy([7, 7, 9, 9, 4], TRUTH) == 1.0


def test_grouping_accuracy_merge_everything_scores_zero_unless_one_true_group() -> None:
    assert grouping_accuracy([0, 0, 0, 0], ["a", "a", "b", "b"]) == 0.0
    assert grouping_accuracy([0, 0, 0], ["a", "a", "a"]) == 1.0


def test_grouping_accuracy_singletons_only_credit_true_singletons() -> None:
    assert grouping_accuracy([0, 1, 2], ["a", "a", "b"]) == pytest.approx(1 / 3)


def test_grouping_f1_is_f1_over_exact_groups() -> None:
    # One of three predicted groups equals one of three true groups: P = R = 1/3.
    assert grouping_f1(PRED, TRUTH) == pytest.approx(1 / 3)
    assert grouping_f1([0, 0, 0, 0], ["a", "a", "b", "b"]) == 0.0


def test_pairwise_prf_from_contingency_counts() -> None:
    # predicted pairs {0,1},{3,4}; true pairs {0,1},{2,3}; one in common.
    assert pairwise_prf(PRED, TRUTH) == pytest.approx((0.5, 0.5, 0.5))
    # everything merged: 6 predicted pairs, 2 true ones, both found.
    assert pairwise_prf([0, 0, 0, 0], ["a", "a", "b", "b"]) == pytest.approx((1 / 3, 1.0, 0.5))


def test_pairwise_prf_conventions_without_pairs() -> None:
    assert pairwise_prf([0, 1, 2], ["a", "b", "c"]) == (1.0, 1.0, 1.0)
    assert pairwise_prf([0, 1, 2], ["a", "a", "b"]) == (1.0, 0.0, 0.0)


def test_pairwise_prf_is_linear_time_on_one_huge_group() -> None:
    n = 300_000  # ~4.5e10 pairs: a pair loop would never finish within the test timeout
    precision, recall, f1 = pairwise_prf([0] * n, [1] * n)
    assert (precision, recall, f1) == (1.0, 1.0, 1.0)


def _ga_brute(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    n = len(truth)
    ok = sum(
        {j for j in range(n) if pred[j] == pred[i]} == {j for j in range(n) if truth[j] == truth[i]} for i in range(n)
    )
    return ok / n


def _prf_brute(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> tuple[float, float, float]:
    pairs = list(combinations(range(len(truth)), 2))
    p = {(i, j) for i, j in pairs if pred[i] == pred[j]}
    t = {(i, j) for i, j in pairs if truth[i] == truth[j]}
    precision = len(p & t) / len(p) if p else 1.0
    recall = len(p & t) / len(t) if t else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@pytest.mark.parametrize("seed", range(25))
def test_grouping_scorers_match_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 40)
    truth = [rng.randint(0, rng.randint(1, 8)) for _ in range(n)]
    pred = [rng.randint(0, rng.randint(1, 8)) for _ in range(n)]
    assert grouping_accuracy(pred, truth) == pytest.approx(_ga_brute(pred, truth))
    assert pairwise_prf(pred, truth) == pytest.approx(_prf_brute(pred, truth))


def test_grouping_scorers_refuse_bad_input() -> None:
    with pytest.raises(ValueError):
        grouping_accuracy([1, 2], [1])
    with pytest.raises(ValueError):
        pairwise_prf([], [])


# ---------------------------------------------------------------- retrieval

RANKED = [["a", "b", "c"], ["x", "y"], ["q"]]
EXPECTED: list[str | set[str]] = ["b", {"z", "y"}, "w"]


def test_recall_at_k() -> None:
    assert recall_at_k(RANKED, EXPECTED, 1) == 0.0
    assert recall_at_k(RANKED, EXPECTED, 2) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, EXPECTED, 10) == pytest.approx(2 / 3)


def test_mrr() -> None:
    assert mrr(RANKED, EXPECTED) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)
    assert mrr(RANKED, EXPECTED, k=1) == 0.0
    assert mrr([["hit", "x"]], ["hit"]) == 1.0


def test_retrieval_scorers_refuse_bad_input() -> None:
    with pytest.raises(ValueError):
        recall_at_k(RANKED, EXPECTED, 0)
    with pytest.raises(ValueError):
        mrr(RANKED, EXPECTED[:2])


# ---------------------------------------------------------------- bullets


def test_key_tokens_keep_identifiers_and_drop_stopwords() -> None:
    assert key_tokens("The pod giant-narwhal-6958c5bdd8-69gtn was killed due to OOM") == [
        "pod",
        "giant-narwhal-6958c5bdd8-69gtn",
        "killed",
        "oom",
    ]
    assert key_tokens("Set `DEPLOY_ENV` and reach prod-db:3333") == ["set", "deploy_env", "reach", "prod-db:3333"]


def test_bullet_recall_hand_example() -> None:
    answer = "The pod analytics-exporter-fast was OOMKilled and is in CrashLoopBackOff."
    bullets = [
        "Pod `analytics-exporter-fast` is experiencing a `CrashLoopBackOff`",  # pod, id, crashloopbackoff: 3/3
        "Pod is OOM killed",  # pod, oom, killed: all found via the parts of OOMKilled
        'The StorageClass "standard-v2" does not exist',  # storageclass, standard-v2, exist: 0/3
    ]
    score, hits = bullet_recall(answer, bullets)
    assert hits == [True, True, False]
    assert score == pytest.approx(2 / 3)


def test_bullet_recall_identifiers_must_be_verbatim_and_threshold_applies() -> None:
    bullet = "The app connects to prod-db:3333"  # app, connects, prod-db:3333
    loose = "the app connects to prod-db on port 3333"  # 2 of 3 key tokens: the identifier is not verbatim
    assert bullet_recall(loose, [bullet]).hits == [True]
    assert bullet_recall(loose, [bullet], threshold=0.9).hits == [False]
    assert bullet_recall("app connects to PROD-DB:3333", [bullet], threshold=1.0).hits == [True]


def test_bullet_recall_stems_plain_words() -> None:
    assert bullet_recall("two nodes were pending", ["node pending"]).hits == [True]
    assert bullet_recall("nothing relevant here", ["node selector mismatch"]).score == 0.0


def test_bullet_recall_edge_cases() -> None:
    assert bullet_recall("anything", ["the of and"]).hits == [True]  # no key token: vacuously stated
    with pytest.raises(ValueError):
        bullet_recall("answer", [])
    with pytest.raises(ValueError):
        bullet_recall("answer", ["x"], threshold=0)


# ---------------------------------------------------------------- rates


class _Draft(BaseModel):
    a: int


def test_schema_valid_rate() -> None:
    outputs: list[str | dict[str, object]] = ['{"a": 1}', {"a": "x"}, '{"a": 2', {"a": 3}]
    assert schema_valid_rate(outputs, _Draft) == 0.5


def test_citation_valid_rate() -> None:
    cited = [["e1"], [], ["e1", "e9"], ["e2"]]
    evidence = [["e1", "e2"], ["e1"], ["e1"], ["e2"]]
    assert citation_valid_rate(cited, evidence) == 0.5
    assert citation_valid_rate(cited, evidence, require_citation=False) == 0.75


def test_no_issue_rates() -> None:
    verdicts = ["No issue", "root_cause", "inconclusive", "Nothing-wrong", "root_cause"]
    assert no_issue_inconclusive_rate(verdicts, [True, True, True, True, False]) == 0.75
    # real issues: inconclusive (a miss, not a dismissal), nothing_wrong (dismissed), root_cause
    assert issue_dismissed_rate(verdicts[2:], [False, False, False]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError):
        no_issue_inconclusive_rate(["root_cause"], [False])  # no control to score


def test_rate_and_leaks() -> None:
    assert rate([True, False, True, True]) == 0.75
    with pytest.raises(ValueError):
        rate([])
    texts = ["db said AKIAEXAMPLE42 denied", "clean text"]
    assert leaked_secrets(texts, ["AKIAEXAMPLE42", "zzz", ""]) == {"AKIAEXAMPLE42"}


# ---------------------------------------------------------------- published baselines


def test_published_drain_baselines_are_scores_for_the_seven_systems() -> None:
    systems = {"Apache", "HDFS", "HPC", "Linux", "OpenSSH", "Proxifier", "Spark"}
    assert set(published.DRAIN_LOGHUB2K_CORRECTED) == systems
    assert set(published.DRAIN_LOGHUB2_FULL) == systems
    for scores in [*published.DRAIN_LOGHUB2K_CORRECTED.values(), *published.DRAIN_LOGHUB2_FULL.values()]:
        assert all(0.0 <= v <= 1.0 for v in (scores.ga, scores.fga, scores.pa, scores.fta))
    assert published.published_ga("HDFS") == 0.998
    assert published.published_ga("BGL") is None  # not in our copy: no number rather than a guess
