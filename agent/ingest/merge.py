"""Which template patterns are one error: a pure function of the SET of stored templates.

Ingest keys on exact masked shapes. This pass generalises across them, within one service, error
type and token count, by two rules on a position `p`:

- **another kind of value**: two templates equal everywhere but at `p`, where both hold a masked value
  that differs only in its kind (`rhost=<IP>` / `rhost=<HOST>`, `lifetime <TS>` / `lifetime <DUR>`);
- **many values**: `min_values` or more templates equal everywhere but at `p` (`session opened for
  user cyrus` / `news` / `test`) around at least `min_context` fixed words: a word that takes that many
  values in one place is a parameter. Two values alone (`opened` / `closed`) are not enough, and
  neither is a one-word message (`active` / `blocked` / `normal`).

Equal templates are one group too (a pattern from before grouping v2 and its new twin).
Templates joined by any rule, transitively, are one group. Because the answer depends only on the
set (not on the order templates arrived in) and adding templates can only join groups, every replica
computes the same groups, and a group found earlier stays a group later. Pinned templates (an admin
unmerged them) are never joined.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agent.ingest.masking import is_masked

WILDCARD = "<*>"
_KIND = re.compile(r"<[A-Z]+>|<\*>")


def _kindless(token: str) -> str:
    return _KIND.sub("<*>", token)


@dataclass(frozen=True)
class Template:
    key: str
    """The pattern id."""
    service: str
    error_type: str
    text: str
    pinned: bool = False


@dataclass
class Group:
    members: list[Template]
    template: str
    """The members' common template, `<*>` where they differ."""
    reasons: dict[str, str] = field(default_factory=dict)
    """Why each member was joined (by key)."""


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)
        return True


def _describe(p: int, values: Iterable[str], rule: str) -> str:
    shown = sorted(set(values))
    more = f", … {len(shown) - 5} more" if len(shown) > 5 else ""
    return f"{rule} at word {p + 1}: {', '.join(shown[:5])}{more}"


def _merged_text(token_lists: Sequence[Sequence[str]]) -> str:
    return " ".join(col[0] if len(set(col)) == 1 else WILDCARD for col in zip(*token_lists, strict=True))


def find_groups(templates: Iterable[Template], *, min_values: int = 3, min_context: int = 3) -> list[Group]:
    """Groups of two or more templates that are one error, in a deterministic order."""
    buckets: dict[tuple[str, str, int], list[Template]] = defaultdict(list)
    for t in templates:
        if not t.pinned:
            buckets[(t.service, t.error_type, len(t.text.split(" ")))].append(t)
    groups: list[Group] = []
    for bucket_key in sorted(buckets):
        members = sorted(buckets[bucket_key], key=lambda t: (t.text, t.key))
        if len(members) < 2:
            continue
        tokens = [m.text.split(" ") for m in members]
        uf = _UnionFind(len(members))
        why: dict[int, str] = {}
        for i in range(1, len(members)):  # the same template (e.g. a pattern from before v2 and its new twin)
            if tokens[i] == tokens[i - 1] and uf.union(i - 1, i):
                why.setdefault(i, "the same template")
                why.setdefault(i - 1, "the same template")
        for p in range(bucket_key[2]):
            around: dict[tuple[str, ...], list[int]] = defaultdict(list)
            for i, toks in enumerate(tokens):
                around[(*toks[:p], *toks[p + 1 :])].append(i)
            for context, idxs in around.items():
                if len(idxs) < 2:
                    continue
                values = [tokens[i][p] for i in idxs]
                fixed = sum(1 for tok in context if not is_masked(tok) and tok != WILDCARD)
                if len(set(values)) >= min_values and fixed >= min_context:
                    rule = "many values"
                elif all(is_masked(v) for v in values) and len({_kindless(v) for v in values}) == 1:
                    rule = "another kind of value"
                else:
                    continue
                reason = _describe(p, values, rule)
                for i in idxs[1:]:
                    if uf.union(idxs[0], i):
                        why.setdefault(i, reason)
                        why.setdefault(idxs[0], reason)
        by_root: dict[int, list[int]] = defaultdict(list)
        for i in range(len(members)):
            by_root[uf.find(i)].append(i)
        for root in sorted(by_root):
            idxs = by_root[root]
            if len(idxs) < 2:
                continue
            groups.append(
                Group(
                    members=[members[i] for i in idxs],
                    template=_merged_text([tokens[i] for i in idxs]),
                    reasons={members[i].key: why.get(i, "joined") for i in idxs},
                )
            )
    return groups
