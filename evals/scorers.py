"""Pure scoring functions for the eval suites: grouping, retrieval, diagnosis text, rates.

Every function takes plain sequences and returns floats in [0, 1]; none does I/O. Inputs of
unequal length, or empty inputs, raise `ValueError`: a suite that scores nothing is a bug in the
runner, not a perfect score.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from typing import NamedTuple

from pydantic import BaseModel, ValidationError

# ---------------------------------------------------------------- grouping


def _check_pair(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> None:
    if len(pred) != len(truth):
        raise ValueError(f"pred has {len(pred)} items, truth {len(truth)}")
    if not truth:
        raise ValueError("nothing to score")


def grouping_accuracy(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    """Grouping Accuracy (GA) as Loghub / Zhu et al. (ICSE'19) and Loghub-2.0 (ISSTA'24) define it.

    A message counts as correct iff the predicted group it landed in holds exactly the messages
    of its true group. GA = correct messages / all messages. Group ids are opaque labels.
    """
    _check_pair(pred, truth)
    pred_sizes = Counter(pred)
    preds_of_truth: dict[Hashable, set[Hashable]] = {}
    for p, t in zip(pred, truth, strict=True):
        preds_of_truth.setdefault(t, set()).add(p)
    truth_sizes = Counter(truth)
    correct = 0
    for t, preds in preds_of_truth.items():
        # One predicted id for the whole true group, and that id used nowhere else.
        if len(preds) == 1 and pred_sizes[next(iter(preds))] == truth_sizes[t]:
            correct += truth_sizes[t]
    return correct / len(truth)


def grouping_f1(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> float:
    """FGA (Loghub-2.0): F1 over groups, a group being right iff it equals a true group exactly."""
    _check_pair(pred, truth)
    members: dict[Hashable, set[int]] = {}
    for i, t in enumerate(truth):
        members.setdefault(t, set()).add(i)
    pred_members: dict[Hashable, set[int]] = {}
    for i, p in enumerate(pred):
        pred_members.setdefault(p, set()).add(i)
    true_sets = {frozenset(m) for m in members.values()}
    exact = sum(frozenset(m) in true_sets for m in pred_members.values())
    precision, recall = exact / len(pred_members), exact / len(members)
    return 0.0 if exact == 0 else 2 * precision * recall / (precision + recall)


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise_prf(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> tuple[float, float, float]:
    """Precision, recall and F1 over message pairs put in one group, from contingency counts (O(n)).

    A pair is predicted when both messages share a predicted group, true when they share a true
    group. With no predicted pairs precision is 1.0 (no wrong merge was claimed); with no true
    pairs recall is 1.0 (no merge was missed).
    """
    _check_pair(pred, truth)
    both = sum(_pairs(c) for c in Counter(zip(pred, truth, strict=True)).values())
    predicted = sum(_pairs(c) for c in Counter(pred).values())
    actual = sum(_pairs(c) for c in Counter(truth).values())
    precision = both / predicted if predicted else 1.0
    recall = both / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# ---------------------------------------------------------------- retrieval


def _relevant(expected: str | Collection[str]) -> Collection[str]:
    return {expected} if isinstance(expected, str) else expected


def _check_queries(ranked: Sequence[Sequence[str]], expected: Sequence[str | Collection[str]]) -> None:
    if len(ranked) != len(expected):
        raise ValueError(f"{len(ranked)} rankings for {len(expected)} expectations")
    if not ranked:
        raise ValueError("nothing to score")


def recall_at_k(ranked: Sequence[Sequence[str]], expected: Sequence[str | Collection[str]], k: int) -> float:
    """Share of queries whose top `k` results hold at least one relevant id.

    Args:
        ranked: per query, result ids best first.
        expected: per query, the relevant id or set of ids.
        k: cut-off, at least 1.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    _check_queries(ranked, expected)
    hits = sum(any(r in _relevant(e) for r in results[:k]) for results, e in zip(ranked, expected, strict=True))
    return hits / len(ranked)


def mrr(ranked: Sequence[Sequence[str]], expected: Sequence[str | Collection[str]], k: int | None = None) -> float:
    """Mean reciprocal rank of the first relevant result (0 when none is in the top `k`)."""
    if k is not None and k < 1:
        raise ValueError("k must be at least 1")
    _check_queries(ranked, expected)
    total = 0.0
    for results, e in zip(ranked, expected, strict=True):
        relevant = _relevant(e)
        for rank, r in enumerate(results[:k] if k else results, start=1):
            if r in relevant:
                total += 1.0 / rank
                break
    return total / len(ranked)


# ---------------------------------------------------------------- diagnosis text

# Function words and filler that say nothing about a root cause. Negations ("not", "no") are
# dropped too: key-token matching cannot judge negation, an LLM judge or a human can.
_STOPWORD_TEXT = """a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down due during each either else ever few for from further
    had has have having he her here hers him his how however i if in into is it its itself just let may me
    might more most must my neither no nor not now of off on once only or other our ours out over own per
    please same shall she should so some such than that the their theirs them then there these they this
    those through to too under until up upon us very via was we were what when where whether which while who
    whom why will with within without would yes yet you your yours
    answer appears apparently basically currently experiencing fine following found given likely looks
    order possibly probably seems shown stated summarized summary whichever"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())
# Identifier-ish runs: words, numbers and names joined by - _ . : / = (pod names, host:port, images).
_TOKEN = re.compile(r"[A-Za-z0-9]+(?:[-_.:/=@][A-Za-z0-9]+)*")
_JOINERS = re.compile(r"[-_.:/=@]")
_CAMEL = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
_SUFFIXES = ("ing", "ed", "es", "s")


def _stem(word: str) -> str:
    """A light suffix strip so "killed"/"kill" and "nodes"/"node" meet; identifiers are never stemmed."""
    if not word.isalpha() or len(word) <= 4:
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def key_tokens(text: str) -> list[str]:
    """The tokens that carry a bullet's meaning, lowercased, in order, without repeats.

    Stopwords and single letters go; identifiers (`prod-db:3333`, `giant-narwhal-6958c5bdd8-69gtn`,
    `DEPLOY_ENV`), names and numbers stay whole.
    """
    seen: dict[str, None] = {}
    for match in _TOKEN.finditer(text):
        token = match.group(0).lower()
        if token in STOPWORDS or (len(token) == 1 and not token.isdigit()):
            continue
        seen.setdefault(token, None)
    return list(seen)


def _token_stated(token: str, answer_lower: str, answer_stems: set[str]) -> bool:
    if _JOINERS.search(token):
        return token in answer_lower  # identifiers must appear whole
    return _stem(token) in answer_stems


class BulletScore(NamedTuple):
    """Share of bullets stated, and which ones."""

    score: float
    hits: list[bool]


def bullet_recall(answer: str, bullets: Sequence[str], threshold: float = 0.5) -> BulletScore:
    """How many expected bullets an answer states, by key-token match.

    Rule: each bullet's key tokens come from `key_tokens` (lowercase, stopwords dropped,
    identifiers and numbers kept whole). A plain word is found when its light stem matches a word
    of the answer ("killed" ~ "kill", "nodes" ~ "node"), where the answer's identifiers also count
    by their parts ("OOMKilled" states "oom" and "killed"); an identifier in a bullet (a token
    joined by - _ . : / = @) must occur verbatim, case-insensitively, in the answer. A bullet counts as stated
    when at least `threshold` of its key tokens are found; a bullet with no key token counts as
    stated. score = stated bullets / bullets.
    """
    if not bullets:
        raise ValueError("no bullets to score")
    if not 0.0 < threshold <= 1.0:
        raise ValueError("threshold must be in (0, 1]")
    answer_lower = answer.lower()
    stems: set[str] = set()
    for match in _TOKEN.finditer(answer):
        token = match.group(0)
        # "OOMKilled" also states "oom" and "killed"; "prod-db" also states "prod" and "db".
        parts = [token, *_JOINERS.split(token), *_CAMEL.findall(token)]
        stems.update(_stem(part.lower()) for part in parts if part)
    hits: list[bool] = []
    for bullet in bullets:
        tokens = key_tokens(bullet)
        found = sum(_token_stated(t, answer_lower, stems) for t in tokens)
        hits.append(not tokens or found / len(tokens) >= threshold)
    return BulletScore(sum(hits) / len(hits), hits)


# ---------------------------------------------------------------- rates


def rate(flags: Iterable[bool]) -> float:
    """Share of True among the flags."""
    values = list(flags)
    if not values:
        raise ValueError("nothing to score")
    return sum(values) / len(values)


def schema_valid_rate(outputs: Sequence[str | Mapping[str, object]], model: type[BaseModel]) -> float:
    """Share of raw model outputs (JSON text or parsed mappings) that validate against `model`."""

    def valid(output: str | Mapping[str, object]) -> bool:
        try:
            if isinstance(output, str):
                model.model_validate_json(output)
            else:
                model.model_validate(output)
        except ValidationError:
            return False
        return True

    return rate(valid(o) for o in outputs)


def citation_valid_rate(
    cited: Sequence[Collection[str]], evidence: Sequence[Collection[str]], *, require_citation: bool = True
) -> float:
    """Share of diagnoses whose citations are all among the evidence ids they were shown.

    Args:
        cited: per diagnosis, the evidence ids it cites.
        evidence: per diagnosis, the ids it was given (event, pattern, runbook ids ...).
        require_citation: a diagnosis citing nothing counts as invalid.
    """
    if len(cited) != len(evidence):
        raise ValueError(f"{len(cited)} diagnoses for {len(evidence)} evidence sets")
    return rate((bool(c) or not require_citation) and set(c) <= set(e) for c, e in zip(cited, evidence, strict=True))


NO_ISSUE_VERDICTS = frozenset({"no_issue", "inconclusive", "nothing_wrong", "not_an_issue", "healthy"})


def _verdict(value: str) -> str:
    return re.sub(r"[\s-]+", "_", value.strip().lower())


def no_issue_inconclusive_rate(
    verdicts: Sequence[str], no_issue: Sequence[bool], accepted: Collection[str] = NO_ISSUE_VERDICTS
) -> float:
    """Among negative controls, the share answered "no issue" or "inconclusive" (higher is better).

    Verdicts are compared case- and separator-insensitively ("No issue" == "no_issue").
    """
    if len(verdicts) != len(no_issue):
        raise ValueError(f"{len(verdicts)} verdicts for {len(no_issue)} labels")
    ok = {_verdict(a) for a in accepted}
    return rate(_verdict(v) in ok for v, control in zip(verdicts, no_issue, strict=True) if control)


DISMISSING_VERDICTS = NO_ISSUE_VERDICTS - {"inconclusive"}


def issue_dismissed_rate(
    verdicts: Sequence[str], no_issue: Sequence[bool], accepted: Collection[str] = DISMISSING_VERDICTS
) -> float:
    """Among real issues, the share wrongly answered "nothing wrong" (lower is better).

    "inconclusive" is not counted by default: on a real issue it is a miss, not a false all-clear.
    """
    if len(verdicts) != len(no_issue):
        raise ValueError(f"{len(verdicts)} verdicts for {len(no_issue)} labels")
    ok = {_verdict(a) for a in accepted}
    return rate(_verdict(v) in ok for v, control in zip(verdicts, no_issue, strict=True) if not control)


def leaked_secrets(texts: Iterable[str], secrets: Iterable[str]) -> set[str]:
    """The planted secrets that occur verbatim in any of the texts (stored rows, prompts, drafts)."""
    wanted = [s for s in secrets if s]
    return {s for text in texts for s in wanted if s in text}
