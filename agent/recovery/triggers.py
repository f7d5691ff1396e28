"""From condition hits to the parameter values they justify, per action."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from sqlalchemy import Engine

from agent.recovery.conditions import Hit, Snapshot, max_window
from agent.recovery.config import ActionSpec, RecoveryConfig


def load_snapshot(engine: Engine, config: RecoveryConfig, now: dt.datetime) -> Snapshot:
    """The recent events every condition of `config` may look at."""
    window = max((max_window(a.conditions) for a in config.actions), default=0.0)
    with engine.connect() as conn:
        return Snapshot.load(conn, now, window)


def bound_params(action: ActionSpec, hit: Hit) -> dict[str, str]:
    """Parameters a hit fills: `service` from the hit (the config guarantees the rest have defaults)."""
    params = {n: s.default for n, s in action.params.items() if s.default is not None}
    if "service" in action.params:
        params["service"] = hit.service
    return params


def bindings(action: ActionSpec, snapshot: Snapshot) -> list[tuple[dict[str, str], list[Hit]]]:
    """Each set of parameter values the action's conditions hold for now, with the hits behind it."""
    per_condition = [snapshot.hits(c) for c in action.conditions]
    keyed: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[Hit]]] = {}
    for hits in per_condition:
        for h in hits:
            params = bound_params(action, h)
            keyed.setdefault(tuple(sorted(params.items())), (params, []))[1].append(h)
    if action.match == "all":
        keys = [{tuple(sorted(bound_params(action, h).items())) for h in hits} for hits in per_condition]
        common = set.intersection(*keys) if keys else set()
        keyed = {k: v for k, v in keyed.items() if k in common}
    return list(keyed.values())


def holding(action: ActionSpec, params: Mapping[str, str], snapshot: Snapshot) -> list[Hit]:
    """The hits for which the action's conditions hold now with exactly these parameter values."""
    for bound, hits in bindings(action, snapshot):
        if bound == dict(params):
            return hits
    return []
