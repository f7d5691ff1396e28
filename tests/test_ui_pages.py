"""UI pages over a seeded app (TestClient): what each page shows, and the review/approval/ask actions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.bootstrap import Services
from agent.settings import Settings
from tests.conftest import ADMIN_KEY, INGEST_KEY
from tests.test_ui_support import Seeded, Wiring, csrf_of, entry, login, proposal, ui, ui_app

__all__ = ["ui"]

UI = tuple[TestClient, Services, Seeded]


def _follow(client: TestClient, response: object) -> str:
    """The page a 303 leads to (its flash message included)."""
    location = response.headers["location"]  # type: ignore[attr-defined]
    return client.get(location).text


def test_overview_charts_status_and_top_patterns(ui: UI) -> None:
    client, _services, seeded = ui
    login(client, INGEST_KEY)
    page = client.get("/ui")
    assert page.status_code == 200
    html = page.text
    assert html.count('<svg class="chart"') == 2
    assert "Events per hour by service, last 24 h" in html and "Events per hour by severity" in html
    assert "13 events in total" in html  # the chart's description for screen readers
    for service in ("api", "worker", "ai-orchestrator"):
        assert f">{service}</" in html or f"{service}<" in html
    assert f'href="/ui/patterns/{seeded.api}"' in html
    assert "New (first seen" in html and "Recurring" in html
    assert 'hx-get="/ui/partials/status"' in html
    assert "to review</a>" in html and "open proposals" in html
    assert ' style="' not in html  # the CSP allows no inline styles
    assert "Recovery</a>" not in html  # ingest sessions get no recovery link
    static = client.get("/ui/static/htmx.min.js")
    assert static.status_code == 200 and "javascript" in static.headers["content-type"]
    partial = client.get("/ui/partials/status", headers={"HX-Request": "true"})
    assert partial.status_code == 200 and "<html" not in partial.text and "Writer queue" in partial.text


def test_patterns_list_filters_search_and_htmx_fragment(ui: UI) -> None:
    client, _services, seeded = ui
    login(client, INGEST_KEY)
    html = client.get("/ui/patterns").text
    assert "4 patterns" in html and seeded.api in html and seeded.disk in html
    only_worker = client.get("/ui/patterns", params={"service": "worker"}).text
    assert seeded.disk in only_worker and seeded.api not in only_worker
    critical = client.get("/ui/patterns", params={"severity": "critical"}).text
    assert seeded.disk in critical and seeded.ollama not in critical
    searched = client.get("/ui/patterns", params={"q": "ollama"}).text
    assert seeded.ollama in searched and "1 pattern<" in searched
    nonsense = client.get("/ui/patterns", params={"severity": "bogus", "sort": "x", "page": "zz"})
    assert nonsense.status_code == 200 and "4 patterns" in nonsense.text
    fragment = client.get(
        "/ui/patterns", params={"q": "refused"}, headers={"HX-Request": "true", "HX-Target": "pattern-results"}
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text and seeded.api in fragment.text
    # Hostile text from an event is escaped, never markup.
    assert "bad &lt;script&gt;alert(" in html and "<script>alert" not in html


def test_pattern_detail_shows_evidence_similar_and_guide(ui: UI) -> None:
    client, services, seeded = ui
    login(client, ADMIN_KEY)
    page = client.get(f"/ui/patterns/{seeded.api}")
    assert page.status_code == 200
    html = page.text
    assert "connection to db-1:5432 refused" in html
    assert "File &#34;/srv/api/app/db.py&#34;, line 42, in connect" in html  # the stack trace, escaped
    assert '<svg class="chart"' in html and "Events per hour" in html
    diagnosis = services.diagnoser.current(seeded.api)
    assert diagnosis is not None
    for ref in diagnosis.evidence:  # every cited id is a link to its page
        kind = "events" if ref.startswith("ev_") else "patterns"
        assert f'href="/ui/{kind}/{ref}"' in html
        assert client.get(f"/ui/{kind}/{ref}").status_code == 200
    assert "The dependency refuses connections." in html
    assert f"confidence {diagnosis.confidence * 100:.0f} %" in html
    similar = re.findall(r"</meter> (\d\.\d\d)</td>", html)
    assert similar, "similar incidents with scores"
    assert all(0.0 <= float(s) <= 1.0 for s in similar)
    guide_entry = services.guide.entries()  # the draft for this pattern is linked
    linked = [e.id for e in guide_entry if seeded.api in e.pattern_ids]
    assert linked and f'href="/ui/guide/{linked[0]}"' in html
    assert f"/ui/patterns/{seeded.api}/diagnose" in html  # admins may re-run it
    assert "docker compose restart api" in html  # the recovery proposal for this pattern
    assert client.get("/ui/patterns/pat_nope").status_code == 404
    assert "Not found" in client.get("/ui/patterns/pat_nope").text


def test_diagnose_again_queues_a_job(ui: UI) -> None:
    client, services, seeded = ui
    token = login(client, ADMIN_KEY)
    r = client.post(f"/ui/patterns/{seeded.api}/diagnose", data={"csrf_token": token})
    assert r.status_code == 303
    # The seed's own diagnosis jobs may still wait in the queue: then it says so.
    assert re.search(
        r'class="flash" role="status">(Diagnosis queued|A diagnosis is already queued)', _follow(client, r)
    )
    jobs = services.core.status()["jobs"]
    assert jobs["diagnose"].get("queued", 0) >= 1


def test_event_and_knowledge_pages(ui: UI) -> None:
    client, services, seeded = ui
    login(client, INGEST_KEY)
    _pattern, events = services.core.pattern_detail(seeded.api, 1) or (None, [])
    html = client.get(f"/ui/events/{events[0].id}").text
    assert "Stack trace" in html and f'href="/ui/patterns/{seeded.api}"' in html
    assert client.get("/ui/events/ev_nope").status_code == 404
    assert client.get("/ui/knowledge/nothing-here").status_code == 404


def test_pattern_page_survives_retrieval_failure(ui: UI, monkeypatch: pytest.MonkeyPatch) -> None:
    client, services, seeded = ui
    login(client, INGEST_KEY)

    def down() -> None:
        raise RuntimeError("vector store is down")

    monkeypatch.setattr(services.runtime, "retrieval", down)
    page = client.get(f"/ui/patterns/{seeded.disk}")
    assert page.status_code == 200
    assert "similar incidents are unavailable: RuntimeError: vector store is down" in page.text
    assert "No space left on device" in page.text


def test_guide_review_approve_edit_reject_merge(ui: UI, tmp_path: Path) -> None:
    client, services, seeded = ui
    token = login(client, ADMIN_KEY, name="alice")
    queue = client.get("/ui/guide").text
    for ident in seeded.drafts:
        assert f'href="/ui/guide/{ident}"' in queue
    first, second, third, fourth = seeded.drafts[:4]
    page = client.get(f"/ui/guide/{first}").text
    assert "Evidence" in page and "Approve draft" in page and 'name="csrf_token"' in page
    assert re.search(r'href="/ui/(events|patterns)/(ev|pat)_[0-9a-f]+"', page), "the draft's evidence is linked"

    r = client.post(f"/ui/guide/{first}/approve", data={"csrf_token": token})
    assert r.status_code == 303 and f"{first} approved" in _follow(client, r)
    assert entry(services, first).status.value == "approved"
    assert entry(services, first).approved_by == "alice"
    guide_file = services.guide.guide_path
    assert first in guide_file.read_text()
    assert first in client.get("/ui/guide?status=approved").text
    knowledge = client.get(f"/ui/knowledge/{first}")  # approved entries are indexed as knowledge
    assert knowledge.status_code == 200 and entry(services, first).title in knowledge.text
    assert first not in client.get("/ui/guide").text.split("<tbody>")[1]

    bad = client.post(f"/ui/guide/{second}/edit", data={"csrf_token": token, "title": "", "then": "save"})
    assert bad.status_code == 422 and "Not saved" in bad.text
    edited = client.post(
        f"/ui/guide/{second}/edit",
        data={"csrf_token": token, "title": "Database refuses connections", "solution_steps": "Start it\nCheck it\n"},
    )
    assert edited.status_code == 303
    saved = entry(services, second)
    assert saved.title == "Database refuses connections" and saved.solution_steps == ["Start it", "Check it"]
    assert saved.status.value == "draft"

    no_reason = client.post(f"/ui/guide/{third}/reject", data={"csrf_token": token, "reason": " "})
    assert no_reason.status_code == 422 and "Give a reason" in no_reason.text
    rejected = client.post(f"/ui/guide/{third}/reject", data={"csrf_token": token, "reason": "wrong cause"})
    assert rejected.status_code == 303 and entry(services, third).rejection_reason == "wrong cause"
    again = client.post(f"/ui/guide/{third}/approve", data={"csrf_token": token})
    assert "Not done" in _follow(client, again)  # a rejected entry cannot be approved

    merged = client.post(f"/ui/guide/{fourth}/merge", data={"csrf_token": token, "into": second})
    assert merged.status_code == 303
    assert entry(services, fourth).superseded_by == second
    assert client.get("/ui/guide/ERROR-999").status_code == 404


def test_recovery_approve_deny_and_audit(ui: UI) -> None:
    client, services, seeded = ui
    token = login(client, ADMIN_KEY, name="alice")
    html = client.get("/ui/recovery").text
    assert "Dry run." in html and "/usr/bin/docker compose restart api" in html
    assert f"Approve #{seeded.proposal}" in html
    assert f"Approve #{seeded.advice}" not in html and "Advice only" in html  # propose mode: nothing to approve
    r = client.post(f"/ui/recovery/proposals/{seeded.proposal}/approve", data={"csrf_token": token})
    assert r.status_code == 303
    after = _follow(client, r)
    assert f"Proposal {seeded.proposal} approved" in after and "dry run" in after
    assert proposal(services, seeded.proposal).status.value == "approved"
    audit = after.split('id="h-audit"')[1]
    assert "admin:alice" in audit and ">approved<" in audit
    refused = client.post(f"/ui/recovery/proposals/{seeded.advice}/approve", data={"csrf_token": token})
    assert "not approved" in _follow(client, refused) and "propose mode" in client.get("/ui/recovery").text
    no_reason = client.post(f"/ui/recovery/proposals/{seeded.advice}/deny", data={"csrf_token": token})
    assert "give a reason" in _follow(client, no_reason)
    denied = client.post(
        f"/ui/recovery/proposals/{seeded.advice}/deny", data={"csrf_token": token, "reason": "not now"}
    )
    assert "denied" in _follow(client, denied)
    assert proposal(services, seeded.advice).status.value == "denied"
    services.recovery.tick()  # the approved proposal runs as a dry run
    ran = client.get("/ui/recovery").text
    assert ">dry run<" in ran
    missing = client.post("/ui/recovery/proposals/9999/approve", data={"csrf_token": token})
    assert missing.status_code == 404


def test_ask_without_javascript_and_streamed(ui: UI) -> None:
    client, _services, seeded = ui
    token = login(client, INGEST_KEY)
    page = client.post("/ui/ask", data={"csrf_token": token, "question": "why did the api fail?"})
    assert page.status_code == 200
    assert "cannot reach its database" in page.text
    assert re.search(r'<a href="/ui/patterns/pat_[0-9a-f]+">pat_', page.text), "citations are links"
    short = client.post("/ui/ask", data={"csrf_token": token, "question": "x"})
    assert short.status_code == 422 and "at least 3 characters" in short.text

    with client.stream(
        "POST",
        "/ui/ask/stream",
        data={"question": "why did the api fail?", "service": "api"},
        headers={"X-CSRF-Token": token},
    ) as s:
        assert s.headers["content-type"].startswith("text/event-stream")
        body = "".join(s.iter_text())
    events = re.findall(r"event: (\w+)\ndata: (.*)\n\n", body)
    kinds = [k for k, _ in events]
    assert kinds.count("delta") >= 1 and kinds[-1] == "done"
    streamed = "".join(json.loads(d)["text"] for k, d in events if k == "delta")
    done = json.loads(events[-1][1])
    assert streamed == done["answer"]
    assert done["citations"] and done["citations"][0]["href"] == f"/ui/patterns/{done['citations'][0]['id']}"
    assert seeded.api in [c["id"] for c in done["citations"]]
    bad = client.post("/ui/ask/stream", data={"question": "x"}, headers={"X-CSRF-Token": token})
    assert "event: error" in bad.text


def test_layers_that_are_not_wired_say_so(settings: Settings) -> None:
    with TestClient(ui_app(settings, Wiring(guide=False, recovery=False)), follow_redirects=False) as client:
        login(client, ADMIN_KEY)
        guide = client.get("/ui/guide")
        assert guide.status_code == 503 and "The guide is not available" in guide.text
        recovery = client.get("/ui/recovery")
        assert recovery.status_code == 503 and "Recovery is not available" in recovery.text
        overview = client.get("/ui").text
        assert "guide not available" in overview and "not available" in overview
        token = csrf_of(overview)
        assert client.post("/ui/guide/ERROR-001/approve", data={"csrf_token": token}).status_code == 404


def test_static_assets_are_served_and_vendored() -> None:
    from agent.api.ui.templating import STATIC_DIR, TEMPLATES_DIR

    names = {p.name for p in STATIC_DIR.iterdir()}
    assert {"htmx.min.js", "htmx.LICENSE.txt", "ui.css", "app.js", "favicon.svg"} <= names
    assert (STATIC_DIR / "htmx.min.js").stat().st_size > 40_000
    templates = {p.name for p in (TEMPLATES_DIR / "ui").iterdir()}
    assert {"base.html.j2", "overview.html.j2", "pattern.html.j2", "guide_entry.html.j2", "ask.html.j2"} <= templates
    for name in ("ui.css", "app.js", "favicon.svg"):  # our assets point at no other host
        text = (STATIC_DIR / name).read_text().replace("http://www.w3.org/2000/svg", "")
        assert "://" not in text, name
