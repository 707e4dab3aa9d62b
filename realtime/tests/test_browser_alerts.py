"""Alert toasts and the Alerts page in a real headless Chromium (Playwright) against daphne with the
embedded queue (the server fixture of leads/tests/test_browser.py: its own SQLite file, 25 seeded
leads, an API key). Stages are the defaults: Cold < 40 <= Warm < 100 <= MQL < 300 <= SQL.

Skipped when /usr/bin/chromium is missing, unless TARGETGRID_BROWSER_TESTS=required."""

from __future__ import annotations

import os
import time
import uuid

import pytest

from leads.tests.test_browser import (  # noqa: F401  (fixtures)
    ADMIN_PASSWORD,
    CHROMIUM,
    _login,
    assert_not_reloaded,
    browser,
    mark_no_reload,
    server,
    shot,
    wait_live,
)

if not os.path.exists(CHROMIUM) and os.environ.get("TARGETGRID_BROWSER_TESTS") == "required":
    raise RuntimeError(f"TARGETGRID_BROWSER_TESTS=required but {CHROMIUM} is missing (apt-get install chromium)")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"needs {CHROMIUM} (apt-get install chromium)"),
]

SIZES = {"laptop": {"width": 1366, "height": 768}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(params=sorted(SIZES))
def sized_page(request, browser, server):  # noqa: F811
    context, page = _login(browser, server, "admin", ADMIN_PASSWORD, viewport=SIZES[request.param])
    page.size_name = request.param
    page.errors = []
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    yield page
    context.close()


def warm_lead(server, prefix: str) -> tuple[str, dict]:  # noqa: F811
    """A new lead in Warm (one DEMO_REQUEST: 50 points), scored before any page opens."""
    email = f"{prefix}-{uuid.uuid4().hex[:8]}@example.com"
    server.post_event(email, "DEMO_REQUEST")
    lead = server.wait_for_score(email, lambda score: score == 50)
    assert lead["current_score"] == 50 and lead.get("stage", "Warm") == "Warm", lead
    return email, lead


def assert_fits_the_screen(page, locator) -> None:
    width = page.viewport_size["width"]
    box = locator.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (box, width)
    assert box["y"] >= 0 and box["y"] + box["height"] <= page.viewport_size["height"] + 0.5, box
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth"), "horizontal scroll"


def test_a_lead_crossing_mql_shows_exactly_one_toast_on_the_open_dashboard(sized_page, server):  # noqa: F811
    from playwright.sync_api import expect

    page = sized_page
    # Given a Warm lead and the dashboard open and live,
    email, lead = warm_lead(server, f"toast-{page.size_name}")
    page.goto("/")
    wait_live(page)
    mark_no_reload(page)
    toasts = page.locator("[data-alert-toast]")
    assert toasts.count() == 0
    # when an event takes the lead across MQL (50 + 100 = 150),
    server.post_event(email, "PURCHASE")
    # then one toast names the lead and the stage, links to the lead's page and fits the screen,
    toast = toasts.first
    expect(toast).to_be_visible(timeout=8000)
    expect(toast).to_contain_text(email)
    expect(toast).to_contain_text("Now MQL")
    expect(toast).to_contain_text("Warm → MQL")
    expect(toast).to_have_attribute("role", "status")
    assert toast.locator("a").get_attribute("href") == f"/leads/{lead['id']}/"
    assert_fits_the_screen(page, toast)
    shot(page, f"20-alert-toast-{page.size_name}")
    # (no second toast arrives for the same change)
    page.wait_for_timeout(1000)
    assert toasts.count() == 1
    assert page.locator("[data-alert-summary]").count() == 0
    # and it can be dismissed.
    toast.get_by_role("button", name="Dismiss alert").click()
    expect(toasts).to_have_count(0)
    assert_not_reloaded(page)
    assert page.errors == []


def test_the_alerts_page_lists_alerts_and_gets_new_ones_live(sized_page, server):  # noqa: F811
    from playwright.sync_api import expect

    page = sized_page
    # Given a lead that entered Warm, and the Alerts page open,
    email, lead = warm_lead(server, f"page-{page.size_name}")
    page.goto("/")
    page.get_by_role("link", name="Alerts").first.click() if page.size_name == "laptop" else page.goto("/alerts/")
    page.wait_for_url("**/alerts/")
    wait_live(page)
    rows = page.locator("[data-alerts-table] tbody tr")
    expect(rows.first).to_contain_text(email)
    expect(rows.first).to_contain_text("Cold → Warm")
    mark_no_reload(page)
    # when the lead crosses MQL,
    server.post_event(email, "PURCHASE")
    # then the new alert is the first row, without a reload, linking to the lead,
    expect(rows.first).to_contain_text("Warm → MQL", timeout=8000)
    expect(rows.first).to_contain_text(email)
    expect(rows.first).to_contain_text("150")
    assert rows.first.locator("a").get_attribute("href") == f"/leads/{lead['id']}/"
    expect(rows.nth(1)).to_contain_text("Cold → Warm")
    # the page toasts it too (one toast),
    expect(page.locator("[data-alert-toast]")).to_have_count(1)
    # and nothing scrolls sideways: the lead, stage and score columns are on screen.
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    for cell in (rows.first.locator("a"), rows.first.locator("[data-stage-cell]"), rows.first.locator("td.num")):
        box = cell.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"] + 0.5, box
    assert_not_reloaded(page)
    shot(page, f"21-alerts-page-{page.size_name}")
    assert page.errors == []


def test_a_burst_of_1000_alerts_adds_a_few_nodes(sized_page):
    from playwright.sync_api import expect

    page = sized_page
    page.goto("/")
    wait_live(page)
    # When one frame carries 50 of 1,000 alerts (as the server sends a burst), its 50 come again,
    # and a third frame carries 1 of 1,
    counts = page.evaluate("""() => {
        const alerts = [];
        for (let i = 0; i < 50; i++) alerts.push({kind: 'lead.stage_changed', uid: 'u' + i, lead_id: 'l' + i,
            email: 'burst' + i + '@example.com', from_stage: 'Warm', to_stage: 'MQL', direction: 'up', score: 120});
        TargetGridAlerts.show({type: 'alerts.created', total: 1000, alerts: alerts});
        const first = document.querySelectorAll('.toast').length;
        // the same frame again (a redelivery) toasts nothing and counts nothing more
        TargetGridAlerts.show({type: 'alerts.created', total: 50, alerts: alerts});
        TargetGridAlerts.show({type: 'alerts.created', total: 1, alerts: [{kind: 'lead.stage_changed', uid: 'last',
            lead_id: 'x', email: 'last@example.com', from_stage: 'MQL', to_stage: 'SQL', direction: 'up', score: 300}]});
        return [first, document.querySelectorAll('.toast').length];
    }""")
    # then the stack holds at most 3 alert toasts (2 on a phone) and one "+N more" for the rest,
    limit = 3 if page.size_name == "laptop" else 2
    assert page.evaluate("TargetGridAlerts.maxVisible()") == limit
    assert counts[0] == limit + 1
    assert counts[1] <= limit + 2  # the toast pushed out is leaving (a 200 ms animation)
    expect(page.locator("[data-alert-toast]:not(.is-leaving)")).to_have_count(limit)
    summary = page.locator("[data-alert-summary]")
    expect(summary).to_have_count(1)
    expect(summary).to_contain_text(f"+{1000 - limit} more alerts")
    expect(summary.get_by_role("link", name="See all alerts")).to_have_attribute("href", "/alerts/")
    expect(page.locator("[data-alert-toast]").last).to_contain_text("last@example.com")
    assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    page.wait_for_timeout(400)  # the entry animation, for the screenshot
    shot(page, f"22-alert-burst-{page.size_name}")
    assert page.errors == []


def test_a_real_burst_of_crossings_never_stacks_more_than_four_toasts(sized_page, server):  # noqa: F811
    from playwright.sync_api import expect

    page = sized_page
    page.goto("/")
    wait_live(page)
    page.evaluate("""() => {
        window.__tgMaxToasts = 0;
        window.__tgAlertToasts = 0;
        const region = document.querySelector('[data-toast-region]');
        new MutationObserver(records => {
            records.forEach(r => r.addedNodes.forEach(n => { if (n.matches && n.matches('[data-alert-toast]')) window.__tgAlertToasts++; }));
            window.__tgMaxToasts = Math.max(window.__tgMaxToasts, region.querySelectorAll('.toast:not(.is-leaving)').length);
        }).observe(region, {childList: true});
    }""")
    # When 40 new leads cross into MQL at once (one batch: Cold -> MQL each),
    prefix = f"burst-{page.size_name}-{uuid.uuid4().hex[:6]}"
    events = [{"event_id": f"{prefix}-{n}", "event_type": "PURCHASE", "email": f"{prefix}-{n}@example.com",
               "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())} for n in range(40)]
    status, body = server.api("POST", "/api/events/batch", {"events": events})
    assert status == 202, body
    # then every alert is either a toast or counted in "+N more" (the summary may still be adding up),
    page.wait_for_function(
        """() => {
            const summary = document.querySelector('[data-alert-summary]');
            return window.__tgAlertToasts + (summary ? Number(summary.getAttribute('data-count')) : 0) >= 40;
        }""",
        timeout=15000,
    )
    accounted = page.evaluate(
        "window.__tgAlertToasts + Number((document.querySelector('[data-alert-summary]') || {getAttribute: () => 0}).getAttribute('data-count'))")
    assert accounted == 40
    # and the stack never held more than 3 alert toasts (2 on a phone) and the summary (besides
    # toasts on their way out).
    limit = page.evaluate("TargetGridAlerts.maxVisible()")
    assert page.evaluate("window.__tgMaxToasts") <= limit + 1
    expect(page.locator("[data-alert-toast]:not(.is-leaving)")).to_have_count(limit)
    assert page.errors == []
