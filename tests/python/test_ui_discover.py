"""The dashboard's Discover in a real browser: an index pattern created from the indices that
exist with its time field, saved and reopened by URL; a Lucene query (`message:bye`) and the time
picker narrowing the hits; a document expanded as JSON."""

import json
import time
import urllib.request

from playwright.sync_api import expect
from ui_support import browser, page, screenshot  # noqa: F401 (fixtures)


def es(sluice, method, path, body=None, content_type="application/json"):
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(sluice.es_url + path, data=data, method=method,
                                     headers={"Content-Type": content_type})
    return json.load(urllib.request.urlopen(request))


def iso(seconds_ago):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds_ago))


def test_discover_searches_an_index_pattern_with_lucene_and_a_time_range(sluice, page):
    lines = []
    # Three recent documents (2 bye, 1 hello) in two indices, one old bye outside 15 minutes.
    for index, message, age_s in [("example-a", "bye 1", 60), ("example-a", "hello 1", 120),
                                  ("example-b", "bye 2", 30), ("example-b", "bye old", 3 * 86400)]:
        lines.append(json.dumps({"index": {"_index": index}}))
        lines.append(json.dumps({"@timestamp": iso(age_s), "message": message}))
    es(sluice, "POST", "/_bulk?refresh=true", "\n".join(lines) + "\n", "application/x-ndjson")

    page.goto(f"{sluice.ui_url}/#/discover")
    page.locator(".response-status", has_text="Create an index pattern").wait_for()
    page.fill('input[aria-label="New index pattern"]', "example-*")
    page.locator(".pattern-form .hint", has_text="matches example-a, example-b").wait_for()
    expect(page.locator('select[aria-label="Time field"]')).to_have_value("@timestamp")
    page.click('button:text-is("Create index pattern")')
    page.locator(".response-status", has_text="hits").wait_for()
    # The last 15 minutes by default: the old document is out.
    assert page.locator(".response-status").inner_text().startswith("3 hits")

    # Field names complete in the query bar (Tab takes the first).
    page.fill('input[aria-label="Query (Lucene syntax or Query DSL)"]', "")
    page.type('input[aria-label="Query (Lucene syntax or Query DSL)"]', "mes")
    page.locator("#query-completions li", has_text="message").first.wait_for()
    page.keyboard.press("Tab")
    assert page.input_value('input[aria-label="Query (Lucene syntax or Query DSL)"]').startswith("message")
    page.fill('input[aria-label="Query (Lucene syntax or Query DSL)"]', "message:bye")
    page.press('input[aria-label="Query (Lucene syntax or Query DSL)"]', "Enter")
    page.locator(".response-status", has_text="2 hits").wait_for()
    summaries = page.locator("table.documents tr.doc td:last-child").all_inner_texts()
    assert sorted(json.loads(s)["message"] for s in summaries) == ["bye 1", "bye 2"]
    assert [json.loads(s)["message"] for s in summaries] == ["bye 2", "bye 1"], "newest first"

    page.select_option('select[aria-label="Time range"]', "")
    page.locator(".response-status", has_text="3 hits").wait_for()
    # The hit histogram counts every hit; a bar zooms the time range to its interval.
    page.fill('input[aria-label="Query (Lucene syntax or Query DSL)"]', "")
    page.press('input[aria-label="Query (Lucene syntax or Query DSL)"]', "Enter")
    page.locator(".response-status", has_text="4 hits").wait_for()
    counts = [int(c) for c in page.locator(".histogram .bar").evaluate_all("bars => bars.map(b => b.dataset.count)")]
    assert sum(counts) == 4 and len(counts) > 1, counts
    last = page.locator(".histogram .bar").last
    last_count = int(last.get_attribute("data-count"))
    # The three recent documents share the last bar unless a bucket boundary (an hour, a day)
    # falls between them, which the time of day the test runs at decides.
    assert 1 <= last_count <= 3, counts
    last.click()
    page.locator(".response-status", has_text=f"{last_count} hits").wait_for()
    assert page.input_value('select[aria-label="Time range"]') == "absolute"
    screenshot(page, "discover-histogram")
    page.select_option('select[aria-label="Time range"]', "")
    page.locator(".response-status", has_text="4 hits").wait_for()

    # Query DSL works in the same bar.
    page.fill('input[aria-label="Query (Lucene syntax or Query DSL)"]', '{"match": {"message": "hello"}}')
    page.click('button:text-is("Search")')
    page.locator(".response-status", has_text="1 hits").wait_for()
    page.locator("table.documents button[aria-expanded]").first.click()
    detail = page.locator("tr.doc-detail pre").first
    assert json.loads(detail.inner_text())["message"] == "hello 1"
    screenshot(page, "discover")

    # The URL reopens the same view; the pattern is a saved object.
    url = page.url
    assert "pattern=example" in url and "q=" in url
    page.goto("about:blank")
    page.goto(url)
    page.locator(".response-status", has_text="1 hits").wait_for()
    assert page.input_value('select[aria-label="Time range"]') == ""
    assert page.input_value('input[aria-label="Query (Lucene syntax or Query DSL)"]') == '{"match": {"message": "hello"}}'
    saved = json.load(urllib.request.urlopen(sluice.ui_url + "/api/saved_objects/index-pattern/example"))
    assert saved["attributes"] == {"title": "example-*", "timeFieldName": "@timestamp"}


def test_a_bad_query_is_shown_in_elasticsearchs_words(sluice, page):
    es(sluice, "PUT", "/logs-1/_doc/1?refresh=true", json.dumps({"message": "x"}))
    urllib.request.urlopen(urllib.request.Request(
        sluice.ui_url + "/api/saved_objects/index-pattern/logs", method="PUT",
        data=json.dumps({"attributes": {"title": "logs-*"}}).encode(), headers={"Content-Type": "application/json"}))
    page.goto(f"{sluice.ui_url}/#/discover?pattern=logs&q=message%3A(")
    status = page.locator(".response-status.failed")
    status.wait_for()
    assert status.inner_text().startswith("400")


def test_field_values_become_filter_pills(sluice, page):
    lines = []
    for i, service in enumerate(["api", "api", "api", "worker", "db"]):
        lines.append(json.dumps({"index": {"_index": "svc-1"}}))
        lines.append(json.dumps({"@timestamp": iso(10 + i), "service": service, "n": i}))
    es(sluice, "POST", "/_bulk?refresh=true", "\n".join(lines) + "\n", "application/x-ndjson")
    urllib.request.urlopen(urllib.request.Request(
        sluice.ui_url + "/api/saved_objects/index-pattern/svc", method="PUT",
        data=json.dumps({"attributes": {"title": "svc-*", "timeFieldName": "@timestamp"}}).encode(),
        headers={"Content-Type": "application/json"}))
    page.goto(f"{sluice.ui_url}/#/discover?pattern=svc")
    page.locator(".response-status", has_text="5 hits").wait_for()
    page.locator(".field-list summary", has_text="service").click()
    values = page.locator(".field-list details[open] .top-values li")
    assert values.first.inner_text().split()[:2] == ["api", "3"]
    page.click('button[aria-label="Filter for service: api"]')
    page.locator(".response-status", has_text="3 hits").wait_for()
    assert [t.split("\n")[0] for t in page.locator(".pills li").all_inner_texts()] == ["service: api"]
    assert "filters=" in page.url
    page.click('button[aria-label="Invert filter service: api"]')
    page.locator(".response-status", has_text="2 hits").wait_for()
    assert page.locator(".pills li").first.inner_text().startswith("NOT service: api")
    screenshot(page, "discover-filters")
    # Chosen columns replace the _source summary, in the URL too.
    page.click('button[aria-label="Add column service"]')
    page.locator("table.documents th", has_text="service").wait_for()
    assert page.locator("table.documents thead th").all_inner_texts()[1:] == ["@timestamp", "service"]
    assert sorted(page.locator("table.documents tr.doc td:nth-child(3)").all_inner_texts()) == ["db", "worker"]
    assert "columns=service" in page.url
    # The filter is in the URL: a reload keeps it.
    page.reload()
    page.locator(".response-status", has_text="2 hits").wait_for()
    page.click('button[aria-label="Remove filter service: api"]')
    page.locator(".response-status", has_text="5 hits").wait_for()
    assert page.locator(".pills li").count() == 0


def test_a_search_is_saved_by_name_and_reopened(sluice, page):
    lines = []
    for i, service in enumerate(["api", "api", "worker"]):
        lines.append(json.dumps({"index": {"_index": "jobs-1"}}))
        lines.append(json.dumps({"@timestamp": iso(10 + i), "service": service}))
    es(sluice, "POST", "/_bulk?refresh=true", "\n".join(lines) + "\n", "application/x-ndjson")
    urllib.request.urlopen(urllib.request.Request(
        sluice.ui_url + "/api/saved_objects/index-pattern/jobs", method="PUT",
        data=json.dumps({"attributes": {"title": "jobs-*", "timeFieldName": "@timestamp"}}).encode(),
        headers={"Content-Type": "application/json"}))
    page.goto(f"{sluice.ui_url}/#/discover?pattern=jobs&q=service%3Aapi&from=all&to=now")
    page.locator(".response-status", has_text="2 hits").wait_for()
    page.fill('input[aria-label="Saved search name"]', "API jobs")
    page.click('button:text-is("Save search")')
    page.locator("span.hint", has_text="saved as API jobs").wait_for()
    saved = json.load(urllib.request.urlopen(sluice.ui_url + "/api/saved_objects/search/api-jobs"))
    assert saved["attributes"]["query"] == "service:api" and saved["attributes"]["from"] == "all"

    page.goto(f"{sluice.ui_url}/#/discover?pattern=jobs")
    page.locator(".response-status", has_text="hits").wait_for()
    page.select_option('select[aria-label="Open saved search"]', label="API jobs")
    page.locator(".response-status", has_text="2 hits").wait_for()
    assert page.input_value('input[aria-label="Query (Lucene syntax or Query DSL)"]') == "service:api"
    assert page.input_value('select[aria-label="Time range"]') == ""


def create_pattern(sluice, page, pattern, matched):
    """Opens Discover on a node without patterns and creates `pattern`, which matches `matched`."""
    page.goto(f"{sluice.ui_url}/#/discover")
    page.locator(".response-status", has_text="Create an index pattern").wait_for()
    page.fill('input[aria-label="New index pattern"]', pattern)
    page.locator(".pattern-form .hint", has_text=f"matches {matched}").wait_for()
    page.click('button:text-is("Create index pattern")')


def test_discover_pages_through_every_hit_with_search_after(sluice, page):
    lines = []
    # 120 documents a second apart in two indices; n = 0 is the newest.
    for n in range(120):
        lines.append(json.dumps({"index": {"_index": "paged-b" if n % 2 else "paged-a"}}))
        lines.append(json.dumps({"@timestamp": iso(n + 1), "n": n}))
    es(sluice, "POST", "/_bulk?refresh=true", "\n".join(lines) + "\n", "application/x-ndjson")

    create_pattern(sluice, page, "paged-*", "paged-a, paged-b")
    page.locator(".response-status", has_text="120 hits").wait_for()
    rows = page.locator("table.documents tr.doc")
    expect(rows).to_have_count(50)
    page.click("button.load-more")
    expect(rows).to_have_count(100)
    page.click("button.load-more")
    expect(rows).to_have_count(120)
    expect(page.locator("button.load-more")).to_be_hidden()
    expect(page.locator(".records .status")).to_have_text("120 of 120 shown")
    shown = [json.loads(text)["n"] for text in page.locator("table.documents tr.doc td:last-child").all_inner_texts()]
    assert shown == list(range(120)), "every hit once, newest first"
    screenshot(page, "discover-paged")


def test_a_document_shows_its_surrounding_documents(sluice, page):
    lines = []
    for n in range(21):
        lines.append(json.dumps({"index": {"_index": "around"}}))
        lines.append(json.dumps({"@timestamp": iso(n + 1), "n": n}))
    es(sluice, "POST", "/_bulk?refresh=true", "\n".join(lines) + "\n", "application/x-ndjson")
    create_pattern(sluice, page, "around", "around")
    page.locator(".response-status", has_text="21 hits").wait_for()
    # The 11th newest document (n = 10): five newer and five older around it.
    page.locator("table.documents tr.doc").nth(10).locator("button").first.click()
    page.locator("tr.doc-detail:visible button.view-surrounding").click()
    items = page.locator("tr.doc-detail:visible ol.surrounding-list li")
    expect(items).to_have_count(11)
    assert [json.loads(text)["n"] for text in items.all_inner_texts()] == list(range(5, 16))
    assert json.loads(page.locator("tr.doc-detail:visible li.anchor").inner_text())["n"] == 10
    screenshot(page, "discover-surrounding")


def test_dragging_across_the_histogram_zooms_to_the_bars_it_spans(sluice, page):
    # One document a day, for six days: the histogram of all time has a bar per day.
    lines = []
    for day in range(6):
        lines.append(json.dumps({"index": {"_index": "drag-a"}}))
        lines.append(json.dumps({"@timestamp": iso(day * 86400 + 3600), "message": f"day {day}"}))
    es(sluice, "POST", "/_bulk?refresh=true", "\n".join(lines) + "\n", "application/x-ndjson")
    urllib.request.urlopen(urllib.request.Request(
        f"{sluice.ui_url}/api/saved_objects/index-pattern/drag", method="PUT",
        data=json.dumps({"attributes": {"title": "drag-*", "timeFieldName": "@timestamp"}}).encode(),
        headers={"Content-Type": "application/json"}))
    page.goto(f"{sluice.ui_url}/#/discover?pattern=drag&from=all")
    page.locator(".response-status", has_text="6 hits").wait_for()
    bars = page.locator(".histogram .bar")
    counts = [int(c) for c in bars.evaluate_all("bars => bars.map(b => b.dataset.count)")]
    assert sum(counts) == 6 and len(counts) >= 4, counts

    # Press on the second bar's column (above the bar itself), drag to the fourth, release.
    chart = page.locator(".histogram").bounding_box()
    second, fourth = bars.nth(1).bounding_box(), bars.nth(3).bounding_box()
    y = chart["y"] + 5
    page.mouse.move(second["x"] + second["width"] / 2, y)
    page.mouse.down()
    page.mouse.move(fourth["x"] + fourth["width"] / 2, y, steps=6)
    assert bars.evaluate_all("bars => bars.map(b => b.classList.contains('in-selection'))") == [
        1 <= i <= 3 for i in range(len(counts))]
    page.mouse.up()
    page.locator(".response-status", has_text=f"{sum(counts[1:4])} hits").wait_for()
    assert page.input_value('select[aria-label="Time range"]') == "absolute"
    assert page.locator(".histogram .bar.in-selection").count() == 0
    screenshot(page, "discover-drag-zoom")
