"""The UI in a real browser: Debian's headless Chromium, driven by Playwright, against a live server.

The server is uvicorn in a thread running `create_app` with the scripted model, so diagnoses, drafts and
answers are deterministic. Screenshots of each page go to `test-artifacts/ui/`. Every request the browser
makes is recorded: all of them must go to the server's own origin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from agent.bootstrap import Services
from agent.settings import Settings
from tests.conftest import ADMIN_KEY, INGEST_KEY, REPO
from tests.support import serve_in_thread
from tests.test_ui_support import Seeded, Wiring, seed, ui_app

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts" / "ui"


@dataclass
class LiveUi:
    url: str
    services: Services
    seeded: Seeded
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    """Console errors and failed requests (a CSP violation shows up here)."""

    def watch(self, page: Page) -> Page:
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("requestfailed", self._failed)
        return page

    def _failed(self, request: Any) -> None:
        # ERR_ABORTED is the browser cancelling a request itself: a favicon still loading when the test moves
        # on, or a streamed answer whose body the page has read to the end (its loader is released before
        # the network service reports completion). Anything else (refused, blocked by the CSP…) is a problem.
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"failed: {request.url} {request.failure}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveUi]:
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium (sudo apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install -e '.[dev]')")
    data = tmp_path_factory.mktemp("ui-browser") / "data"
    settings = Settings(
        data_dir=data,
        api_keys=[INGEST_KEY],  # type: ignore[list-item]
        admin_key=ADMIN_KEY,  # type: ignore[arg-type]
        worker=False,  # the test drives the worker; nothing changes behind its back
    )
    wiring = Wiring()
    with serve_in_thread(ui_app(settings, wiring), "ui-test-server", timeout=60) as url:
        yield LiveUi(url, wiring.services[0], seed(wiring.services[0]))


@pytest.fixture(scope="module")
def browser(live: LiveUi) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def new_page(live: LiveUi, browser: Browser) -> Iterator[Callable[..., Page]]:
    contexts: list[Any] = []
    live.requests.clear()
    live.problems.clear()

    def make(width: int = 1280, height: int = 900, **options: Any) -> Page:
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=live.url, **options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return live.watch(context.new_page())

    yield make
    for c in contexts:
        c.close()
    own = [u for u in live.requests if not u.startswith(live.url + "/")]
    assert not own, f"the UI made requests to other hosts: {own}"
    assert not live.problems, live.problems


def nav(page: Page, name: str) -> Any:
    """A link of the main navigation."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True)


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, key: str = ADMIN_KEY, name: str = "alice") -> None:
    from playwright.sync_api import expect

    page.goto("/ui")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("API or admin key").fill(key)
    page.get_by_label("Your name").fill(name)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()


def test_review_flow_in_the_browser(live: LiveUi, new_page: Callable[..., Page]) -> None:
    from playwright.sync_api import expect

    page = new_page()
    page.goto("/ui/login")
    shot(page, "01-login")
    sign_in(page)
    expect(page.locator("svg.chart").first).to_be_visible()
    shot(page, "02-overview")

    # Patterns: the seeded ones, then a live (htmx) search that also updates the address.
    nav(page, "Patterns").click()
    results = page.locator("#pattern-results")
    expect(results).to_contain_text("4 patterns")
    page.get_by_label("Search").fill("ollama")
    expect(results).to_contain_text("1 pattern")
    expect(page).to_have_url(re.compile(r"q=ollama"))
    shot(page, "03-patterns-search")
    page.get_by_label("Search").fill("")
    expect(results).to_contain_text("4 patterns")

    # Pattern detail: diagnosis with linked evidence, similar incidents, the guide entry, the stack trace.
    results.get_by_role("link", name="ConnectionRefusedError").click()
    expect(page).to_have_url(re.compile(rf"/ui/patterns/{live.seeded.api}$"))
    diagnosis = page.locator("#diagnosis")
    expect(diagnosis).to_contain_text("The dependency refuses connections.")
    expect(page.get_by_role("heading", name="Similar incidents")).to_be_visible()
    expect(page.locator("pre.stack").first).to_contain_text('File "/srv/api/app/db.py", line 42')
    shot(page, "04-pattern")
    diagnosis.locator("a.ref-event").first.click()
    expect(page).to_have_url(re.compile(r"/ui/events/ev_[0-9a-f]+$"))
    page.go_back()

    # Guide: open the draft for this pattern from the pattern page, approve it, see it approved.
    page.locator("section[aria-labelledby=h-guide] a.ref-guide").click()
    entry_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("h1")).to_contain_text("draft")
    expect(page.get_by_role("heading", name="Evidence")).to_be_visible()
    shot(page, "05-guide-draft")
    page.get_by_role("button", name="Approve draft").click()
    expect(page.locator(".flash")).to_contain_text(f"{entry_id} approved")
    expect(page.locator("h1 .status")).to_have_text("approved")
    assert entry_id in live.services.guide.guide_path.read_text()
    nav(page, "Guide").click()
    expect(page.locator("main")).not_to_contain_text(entry_id)  # no longer waiting for review
    page.get_by_role("link", name="Approved").click()
    expect(page.locator("main")).to_contain_text(entry_id)
    shot(page, "06-guide-approved")

    # Recovery: approve the proposal (dry run) and find the audit row.
    nav(page, "Recovery").click()
    expect(page.get_by_text("Dry run.")).to_be_visible()
    proposal = live.seeded.proposal
    page.get_by_role("button", name=f"Approve #{proposal}").click()
    expect(page.locator(".flash")).to_contain_text(f"Proposal {proposal} approved")
    audit_row = page.locator("table.audit tbody tr").first
    expect(audit_row).to_contain_text("approved")
    expect(audit_row).to_contain_text("admin:alice")
    expect(audit_row).to_contain_text(f"#{proposal} restart_service")
    shot(page, "07-recovery")

    # Ask: the answer streams in; citations are links to the evidence.
    nav(page, "Ask").click()
    page.get_by_label("Your question").fill("why did the api fail?")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.locator("#answer")).to_contain_text("cannot reach its database")
    citation = page.locator("#citations a").first
    expect(citation).to_have_attribute("href", re.compile(r"^/ui/patterns/pat_[0-9a-f]+$"))
    expect(page).to_have_url(re.compile(r"/ui/ask$"))  # streamed in place, no page load
    expect(page.locator("#answer-meta")).to_contain_text("answered")
    assert any(u.endswith("/ui/ask/stream") for u in live.requests)
    shot(page, "08-ask")
    citation.click()
    expect(page).to_have_url(re.compile(r"/ui/patterns/pat_[0-9a-f]+$"))
    assert len(live.requests) > 20 and all(u.startswith(live.url + "/") for u in live.requests)


def test_narrow_screen_and_keyboard(live: LiveUi, new_page: Callable[..., Page]) -> None:
    from playwright.sync_api import expect

    page = new_page(width=390, height=844)
    sign_in(page, INGEST_KEY, "bob")
    expect(nav(page, "Recovery")).to_have_count(0)  # ingest: no recovery
    for path in ("/ui", f"/ui/patterns/{live.seeded.api}"):
        page.goto(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} overflows a 390 px screen ({width} px)"
    page.goto("/ui")
    shot(page, "09-overview-390px")
    # The first Tab reaches the skip link, which is then visible and moves focus to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    box = skip.bounding_box()
    assert box is not None and box["y"] >= 0
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_works_without_javascript(live: LiveUi, new_page: Callable[..., Page]) -> None:
    from playwright.sync_api import expect

    page = new_page(java_script_enabled=False)
    sign_in(page, INGEST_KEY, "carol")
    page.goto("/ui/patterns?q=space")
    expect(page.locator("#pattern-results")).to_contain_text("OSError")
    page.goto("/ui/ask")
    page.get_by_label("Your question").fill("why did the api fail?")
    page.get_by_role("button", name="Ask", exact=True).click()
    expect(page.locator("#answer")).to_contain_text("cannot reach its database")
    expect(page.locator("#citations a").first).to_have_attribute("href", re.compile(r"^/ui/patterns/pat_"))
