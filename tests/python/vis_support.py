"""What the Visualize and Dashboards tests do as a user would: create an index pattern in Discover,
build a visualization in the editor by picking from its menus, and read back the numbers and
series a chart shows from its accessible data table (canvas pixels are not assertable)."""

import json
import time
import urllib.request

from playwright.sync_api import expect

# The debug binary delivers and indexes within seconds; these bounds only keep a broken build
# from hanging the test.
SEARCHABLE_BOUND_S = 60
CHART_BOUND_MS = 30_000


def es(sluice, method, path, body=None, content_type="application/json"):
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(sluice.es_url + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
    return json.load(urllib.request.urlopen(request))


def bulk(sluice, index, documents):
    lines = []
    for document in documents:
        lines.append(json.dumps({"index": {"_index": index}}))
        lines.append(json.dumps(document))
    answer = es(sluice, "POST", "/_bulk?refresh=true", "\n".join(lines) + "\n", "application/x-ndjson")
    assert not answer["errors"], answer


def saved(sluice, kind, object_id):
    return json.load(urllib.request.urlopen(f"{sluice.ui_url}/api/saved_objects/{kind}/{object_id}"))


def count(sluice, index, query=None):
    body = json.dumps({"query": query}) if query else None
    try:
        return es(sluice, "POST" if body else "GET", f"/{index}/_count", body)["count"]
    except urllib.error.HTTPError:
        return 0


def wait_until(what, done):
    deadline = time.monotonic() + SEARCHABLE_BOUND_S
    while not done():
        assert time.monotonic() < deadline, f"waited too long for {what}"
        time.sleep(0.1)


def create_index_pattern(page, sluice, title, time_field):
    """Discover's form, as a user fills it: the pattern, then its time field (or none)."""
    page.goto(f"{sluice.ui_url}/#/discover")
    page.locator(".pattern-form h2").wait_for()
    page.fill('input[aria-label="New index pattern"]', title)
    page.locator(".pattern-form .hint", has_text="matches").wait_for()
    expect(page.locator('select[aria-label="Time field"]')).to_have_value(time_field)
    page.click('button:text-is("Create index pattern")')
    page.locator(".response-status", has_text="hits").wait_for()


def choose(page, label, option_label):
    page.get_by_label(label, exact=True).select_option(label=option_label)


def new_visualization(page, sluice, type_label):
    page.goto(f"{sluice.ui_url}/#/visualize")
    page.get_by_role("link", name=type_label, exact=True).click()
    page.get_by_label("Index pattern", exact=True).wait_for()
    expect(page.get_by_label("Index pattern", exact=True).locator("option")).not_to_have_count(0)


def save_visualization(page, title):
    page.get_by_label("Title", exact=True).fill(title)
    page.click('button:text-is("Save visualization")')
    page.locator(".vis-form .hint", has_text=f"saved as {title}").wait_for()


def chart_rows(scope):
    """The rows of the chart's data table: (series or None, bucket key, value)."""
    table = scope.locator("table.chart-data").first
    table.wait_for(state="attached", timeout=CHART_BOUND_MS)
    rows = table.locator("tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.series ?? null, r.dataset.key, r.dataset.value])")
    return [(series, key, float(value) if value else None) for series, key, value in rows]


def metric_value(scope):
    return scope.locator(".metric").get_attribute("data-value")
