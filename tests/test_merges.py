"""The merge pass: set-based rules, stored decisions that ingest honours, and an unmerge that sticks."""

from __future__ import annotations

import random

import pytest
from typer.testing import CliRunner

from agent.ingest.merge import Template, find_groups
from tests.conftest import admin_headers


def _t(text: str, key: str | None = None, **kw: object) -> Template:
    return Template(key or text, "svc", "LogLine", text, **kw)  # type: ignore[arg-type]


def _sets(templates: list[Template], **kw: int) -> set[frozenset[str]]:
    return {frozenset(m.key for m in g.members) for g in find_groups(templates, **kw)}


USERS = ["cyrus", "news", "test", "root", "guest"]


def test_a_word_with_many_values_in_one_place_is_a_parameter() -> None:
    groups = find_groups([_t(f"session opened for user {u} by (uid=<NUM>)") for u in USERS], min_values=4)
    assert len(groups) == 1 and groups[0].template == "session opened for user <*> by (uid=<NUM>)"
    assert all("many values at word 5" in r for r in groups[0].reasons.values())


def test_two_values_or_one_word_messages_are_not_merged() -> None:
    assert _sets([_t("session opened for user root"), _t("session closed for user root")], min_values=4) == set()
    assert _sets([_t(w) for w in ("active", "blocked", "normal", "closing", "critical")], min_values=4) == set()
    assert _sets([_t(f"session opened for user {u}") for u in USERS[:3]], min_values=4) == set()


def test_values_of_another_kind_in_one_place_merge() -> None:
    a, b = _t("auth failure rhost=<IP> user=root"), _t("auth failure rhost=<HOST> user=root")
    assert _sets([a, b]) == {frozenset({a.key, b.key})}
    assert _sets([_t("open through proxy <ADDR> HTTPS"), _t("open through proxy <ADDR> SOCKS<NUM>")]) == set()


def test_groups_depend_on_the_set_not_the_order_and_pinned_stay_apart() -> None:
    templates = [_t(f"session opened for user {u} by (uid=<NUM>)") for u in USERS]
    templates += [_t(f"Invalid user {u} from <IP>") for u in USERS] + [_t("Connection closed by <IP> [preauth]")]
    first = _sets(templates, min_values=4)
    for seed in range(5):
        shuffled = templates[:]
        random.Random(seed).shuffle(shuffled)
        assert _sets(shuffled, min_values=4) == first
    pinned = [_t(t.text, pinned=t.key.endswith("root by (uid=<NUM>)")) for t in templates]
    assert all("session opened for user root by (uid=<NUM>)" not in g for g in _sets(pinned, min_values=4))


def _post(client, user: str) -> str:  # type: ignore[no-untyped-def]
    body = {
        "service": "sshd",
        "error_type": "AuthError",
        "error_message": f"Invalid user {user} from 10.0.0.1",
        "severity": "low",
    }
    r = client.post("/errors", json=body)
    assert r.status_code == 202, r.text
    return str(r.json()["pattern_id"])


def _pattern_of(client, event_id: str) -> str:  # type: ignore[no-untyped-def]
    return str(client.get(f"/events/{event_id}").json()["pattern_id"])


def test_merge_pass_then_unmerge_through_the_api_sticks(client) -> None:  # type: ignore[no-untyped-def]
    before = {u: _post(client, u) for u in USERS}
    assert len(set(before.values())) == 5  # exact shapes at ingest
    assert client.post("/patterns/merge-pass").status_code == 403  # admin only
    report = client.post("/patterns/merge-pass", headers=admin_headers()).json()
    assert report["groups"] == 1 and report["merged"] == 4
    listing = client.get("/patterns", params={"service": "sshd"}).json()
    assert listing["count"] == 1 and listing["data"][0]["count"] == 5
    target = listing["data"][0]["id"]
    assert listing["data"][0]["template"] == "Invalid user <*> from <IP>"
    # a later event of a merged shape goes straight to the target, on any replica (the alias is stored)
    assert _post(client, "news") == target
    merges = client.get(f"/patterns/{before['news']}/merges").json()["data"]
    assert merges and merges[0]["kind"] == "merge" and "many values" in merges[0]["reason"]

    victim = before["cyrus"] if before["cyrus"] != target else before["news"]
    victim_user = next(u for u, p in before.items() if p == victim)
    assert client.post(f"/patterns/{victim}/unmerge").status_code == 403
    out = client.post(f"/patterns/{victim}/unmerge", headers=admin_headers()).json()
    assert out["split_from"] == target and out["events_moved"] >= 1
    assert _post(client, victim_user) == victim  # later events go to the split pattern
    client.post("/patterns/merge-pass", headers=admin_headers())
    assert _post(client, victim_user) == victim  # and the pass does not merge it again
    assert client.get(f"/patterns/{victim}").json()["count"] == out["events_moved"] + 2
    assert client.post(f"/patterns/{victim}/unmerge", headers=admin_headers()).status_code == 409
    assert client.post("/patterns/pat_nope/unmerge", headers=admin_headers()).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_unmerge_through_the_cli(client, settings, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from agent.cli import app

    before = {u: _post(client, u) for u in USERS}
    monkeypatch.setenv("ERRLEARN_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    merged = runner.invoke(app, ["patterns", "merge"])
    assert merged.exit_code == 0 and "newly merged 4" in merged.output, merged.output
    target = client.get("/patterns", params={"service": "sshd"}).json()["data"][0]["id"]
    victim_user, victim = next((u, p) for u, p in before.items() if p != target)
    shown = runner.invoke(app, ["patterns", "merges", victim])
    assert shown.exit_code == 0 and "[merge]" in shown.output
    out = runner.invoke(app, ["patterns", "unmerge", victim])
    assert out.exit_code == 0 and "split from" in out.output, out.output
    assert _post(client, victim_user) == victim
    again = runner.invoke(app, ["patterns", "unmerge", victim])
    assert again.exit_code == 1 and "not merged" in again.output
