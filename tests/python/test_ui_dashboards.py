"""Dashboards in a real browser, built by clicking as a user would: the hello/bye scenario's three
counters (`example-*`, every message, `message:hello`, `message:bye`) and the saved search
`message:bye` on a dashboard refreshing itself every 5 s, which shows new records delivered
through a real Firehose delivery stream (boto3 `put_record_batch`) without a reload; panels
moved and resized with the keyboard and the pointer, full screen, and the dashboard reopened by
its URL with the same panels, places and refresh interval."""

import json
import time
import urllib.request

from conftest import aws_client
from playwright.sync_api import expect
from ui_support import browser, page, screenshot  # noqa: F401 (fixtures)
from vis_support import (chart_rows, choose, count, create_index_pattern, metric_value, new_visualization,
                         save_visualization, saved, wait_until)

ROLE = "arn:aws:iam::000000000000:role/firehose"
# The dashboard refreshes every 5 s; a new count must show within a few refreshes.
REFRESHED_BOUND_MS = 60_000


def iso_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def deliver(firehose, messages):
    answer = firehose.put_record_batch(
        DeliveryStreamName="hello-stream",
        Records=[{"Data": json.dumps({"@timestamp": iso_now(), "message": message}).encode()} for message in messages])
    assert answer["FailedPutCount"] == 0


def panel(page, name):
    return page.locator(f'.dashboard-grid .panel[aria-label="{name}"]')


# One grid row and the gap below it, in pixels (`.dashboard-grid` in app.css).
ROW_PX = 88


def drag_title(page, name, columns, rows, steps):
    """Drags a panel by its title bar by whole grid cells."""
    box = panel(page, name).locator(".panel-header").bounding_box()
    column = page.locator(".dashboard-grid").bounding_box()["width"] / 12
    start = (box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move(start[0] + columns * column, start[1] + rows * ROW_PX, steps=steps)
    page.mouse.up()


def grid_place(page, name):
    return panel(page, name).evaluate(
        "p => { const s = getComputedStyle(p); return [s.gridColumnStart, s.gridColumnEnd, s.gridRowStart, s.gridRowEnd]; }")


def test_hello_bye_counters_refresh_as_records_are_delivered(sluice, page):
    firehose = aws_client(sluice, "firehose")
    firehose.create_delivery_stream(
        DeliveryStreamName="hello-stream",
        DeliveryStreamType="DirectPut",
        ElasticsearchDestinationConfiguration={
            "RoleARN": ROLE,
            "IndexName": "example",
            "IndexRotationPeriod": "OneHour",
            "BufferingHints": {"IntervalInSeconds": 1, "SizeInMBs": 1},
            "S3BackupMode": "FailedDocumentsOnly",
            "S3Configuration": {"RoleARN": ROLE, "BucketARN": "arn:aws:s3:::backup"},
        },
    )
    deliver(firehose, ["hello 1", "hello 2", "hello 3", "bye 1", "bye 2"])
    wait_until("the first records in search", lambda: count(sluice, "example-*") == 5)

    # The index pattern and the saved search `message:bye`, in Discover.
    create_index_pattern(page, sluice, "example-*", "@timestamp")
    page.fill('input[aria-label="Query (Lucene syntax or Query DSL)"]', "message:bye")
    page.press('input[aria-label="Query (Lucene syntax or Query DSL)"]', "Enter")
    page.locator(".response-status", has_text="2 hits").wait_for()
    page.fill('input[aria-label="Saved search name"]', "Bye messages")
    page.click('button:text-is("Save search")')
    page.locator("span.hint", has_text="saved as Bye messages").wait_for()

    # The three counters.
    for title, query, expected in [("All messages", "", "5"), ("Hello", "message:hello", "3"), ("Bye", "message:bye", "2")]:
        new_visualization(page, sluice, "Metric")
        choose(page, "Index pattern", "example-*")
        page.get_by_label("Filter (query)", exact=True).fill(query)
        expect(page.locator(".vis-preview .metric")).to_have_attribute("data-value", expected)
        save_visualization(page, title)

    # Messages over time, a bar per interval.
    new_visualization(page, sluice, "Vertical bar")
    choose(page, "Index pattern", "example-*")
    expect(page.get_by_label("Bucket field", exact=True)).to_have_value("@timestamp")
    page.locator(".vis-preview .chart canvas").first.wait_for()
    save_visualization(page, "Messages over time")

    # The dashboard: created by name, the panels added, refreshing every 5 s, saved.
    page.goto(f"{sluice.ui_url}/#/dashboards")
    page.get_by_label("New dashboard", exact=True).fill("Hello bye")
    page.click('button:text-is("Create dashboard")')
    page.wait_for_url("**/#/dashboards?id=hello-bye*")
    for name in ["All messages", "Hello", "Bye", "Bye messages", "Messages over time"]:
        page.get_by_label("Saved visualization or search to add").select_option(label=name)
        page.click('button:text-is("Add panel")')
        panel(page, name).wait_for()
    page.get_by_label("Auto-refresh").select_option(label="Every 5 s")
    assert "refresh=5" in page.url
    expect(panel(page, "All messages").locator(".metric")).to_have_attribute("data-value", "5")
    expect(panel(page, "Hello").locator(".metric")).to_have_attribute("data-value", "3")
    expect(panel(page, "Bye").locator(".metric")).to_have_attribute("data-value", "2")
    expect(panel(page, "Bye messages").locator(".panel-status")).to_have_text("2 hits")
    page.click('button:text-is("Save dashboard")')
    page.locator(".edit-toolbar .hint", has_text="saved Hello bye").wait_for()
    attributes = saved(sluice, "dashboard", "hello-bye")["attributes"]
    assert [(p["kind"], p["ref"]) for p in attributes["panels"]] == [
        ("visualization", "all-messages"), ("visualization", "hello"), ("visualization", "bye"), ("search", "bye-messages"),
        ("visualization", "messages-over-time")]
    assert attributes["refresh"] == 5
    over_time = panel(page, "Messages over time")
    over_time.locator(".chart canvas").first.wait_for()
    assert sum(value for _, _, value in chart_rows(over_time)) == 5
    # Marked, to see that a refresh updates the chart in place rather than drawing a new one.
    over_time.locator(".chart").evaluate("chart => { chart.dataset.kept = 'yes'; }")
    screenshot(page, "dashboard-hello-bye")

    # New records through the delivery stream: the page shows them by itself.
    deliver(firehose, ["hello 4", "hello 5", "hello 6", "hello 7", "bye 3"])
    wait_until("the new records in search", lambda: count(sluice, "example-*") == 10)
    expect(panel(page, "All messages").locator(".metric")).to_have_attribute("data-value", "10", timeout=REFRESHED_BOUND_MS)
    expect(panel(page, "Hello").locator(".metric")).to_have_attribute("data-value", "7", timeout=REFRESHED_BOUND_MS)
    expect(panel(page, "Bye").locator(".metric")).to_have_attribute("data-value", "3", timeout=REFRESHED_BOUND_MS)
    expect(panel(page, "Bye messages").locator(".panel-status")).to_have_text("3 hits", timeout=REFRESHED_BOUND_MS)
    assert page.locator('.dashboard-grid .panel[aria-label="Hello"] .metric').get_attribute("aria-label") == "Hello: 7"
    wait_until("the chart's refresh", lambda: sum(value for _, _, value in chart_rows(over_time)) == 10)
    assert over_time.locator(".chart").get_attribute("data-kept") == "yes"

    # The shared query bar narrows every panel.
    page.fill('input[aria-label="Query (Lucene syntax or Query DSL)"]', "message:hello")
    page.press('input[aria-label="Query (Lucene syntax or Query DSL)"]', "Enter")
    expect(panel(page, "All messages").locator(".metric")).to_have_attribute("data-value", "7")
    expect(panel(page, "Bye").locator(".metric")).to_have_attribute("data-value", "0")
    assert "q=message%3Ahello" in page.url
    page.fill('input[aria-label="Query (Lucene syntax or Query DSL)"]', "")
    page.press('input[aria-label="Query (Lucene syntax or Query DSL)"]', "Enter")
    expect(panel(page, "All messages").locator(".metric")).to_have_attribute("data-value", "10")

    # Full screen hides the header and keeps the way out.
    page.click('button:text-is("Full screen")')
    expect(page.locator("header.header")).to_be_hidden()
    assert "full=1" in page.url
    screenshot(page, "dashboard-full-screen")
    page.keyboard.press("Escape")
    expect(page.locator("header.header")).to_be_visible()
    assert "full=1" not in page.url

    # Reopened by URL: the same panels, counts and refresh interval.
    page.goto("about:blank")
    page.goto(f"{sluice.ui_url}/#/dashboards?id=hello-bye")
    expect(panel(page, "Hello").locator(".metric")).to_have_attribute("data-value", "7")
    expect(page.get_by_label("Auto-refresh")).to_have_value("5")
    assert page.locator(".dashboard-grid .panel").count() == 5

    # Exported as NDJSON, deleted, imported again: the same dashboard opens.
    exported = urllib.request.urlopen(f"{sluice.ui_url}/api/saved_objects/_export").read()
    kinds = sorted(json.loads(line)["type"] for line in exported.splitlines() if line.strip())
    assert kinds == ["dashboard", "index-pattern", "search"] + ["visualization"] * 4
    for kind, object_id in [("dashboard", "hello-bye"), ("visualization", "hello")]:
        urllib.request.urlopen(urllib.request.Request(f"{sluice.ui_url}/api/saved_objects/{kind}/{object_id}", method="DELETE"))
    imported = json.load(urllib.request.urlopen(urllib.request.Request(
        f"{sluice.ui_url}/api/saved_objects/_import", data=exported, method="POST",
        headers={"Content-Type": "application/x-ndjson"})))
    assert imported["successCount"] == 2, imported
    page.goto("about:blank")
    page.goto(f"{sluice.ui_url}/#/dashboards?id=hello-bye")
    expect(panel(page, "Hello").locator(".metric")).to_have_attribute("data-value", "7")


def test_panels_move_and_resize_by_keyboard_and_pointer(sluice, page):
    page.goto(f"{sluice.ui_url}/#/visualize")
    page.get_by_role("link", name="Markdown", exact=True).click()
    page.get_by_label("Markdown", exact=True).fill("# Notes\nThe pipeline's **runbook**")
    page.locator(".vis-preview .markdown h2", has_text="Notes").wait_for()
    save_visualization(page, "Notes")
    page.goto(f"{sluice.ui_url}/#/dashboards")
    page.get_by_label("New dashboard", exact=True).fill("Layout")
    page.get_by_label("New dashboard", exact=True).press("Enter")
    page.wait_for_url("**/#/dashboards?id=layout*")
    page.get_by_label("Saved visualization or search to add").select_option(label="Notes")
    page.click('button:text-is("Add panel")')
    panel(page, "Notes").locator(".markdown strong", has_text="runbook").wait_for()
    assert grid_place(page, "Notes") == ["1", "span 6", "1", "span 4"]

    # Keyboard: arrows on the move button move by one cell, on the resize button resize.
    move = page.get_by_role("button", name="Move Notes (arrow keys)")
    move.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert grid_place(page, "Notes") == ["3", "span 6", "2", "span 4"]
    expect(page.locator(".visually-hidden[role=status]")).to_have_text("Notes: column 3, row 2, 6 wide, 4 high")
    resize = page.get_by_role("button", name="Resize Notes (arrow keys)")
    resize.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowUp")
    assert grid_place(page, "Notes") == ["3", "span 5", "2", "span 3"]

    # Pointer: drag the title bar two columns left and one row up; drag the corner wider.
    drag_title(page, "Notes", -2, -1, steps=5)
    column = page.locator(".dashboard-grid").bounding_box()["width"] / 12
    assert grid_place(page, "Notes") == ["1", "span 5", "1", "span 3"]
    corner = page.get_by_role("button", name="Resize Notes (arrow keys)").bounding_box()
    page.mouse.move(corner["x"] + 4, corner["y"] + 4)
    page.mouse.down()
    page.mouse.move(corner["x"] + 4 + 3 * column, corner["y"] + 4, steps=5)
    page.mouse.up()
    assert grid_place(page, "Notes") == ["1", "span 8", "1", "span 3"]
    screenshot(page, "dashboard-layout")

    page.click('button:text-is("Save dashboard")')
    page.locator(".edit-toolbar .hint", has_text="saved Layout").wait_for()
    [saved_panel] = saved(sluice, "dashboard", "layout")["attributes"]["panels"]
    assert (saved_panel["x"], saved_panel["y"], saved_panel["w"], saved_panel["h"]) == (0, 0, 8, 3)
    page.reload()
    panel(page, "Notes").locator(".markdown").wait_for()
    assert grid_place(page, "Notes") == ["1", "span 8", "1", "span 3"]

    page.click('button[aria-label="Remove Notes"]')
    expect(page.locator(".dashboard-grid .panel")).to_have_count(0)


def put_saved(sluice, kind, object_id, attributes):
    urllib.request.urlopen(urllib.request.Request(
        f"{sluice.ui_url}/api/saved_objects/{kind}/{object_id}", method="PUT",
        data=json.dumps({"attributes": attributes}).encode(), headers={"Content-Type": "application/json"}))


def overlapping(panels):
    """Pairs of saved panels that share a grid cell."""
    def cells(p):
        return {(x, y) for x in range(p["x"], p["x"] + p["w"]) for y in range(p["y"], p["y"] + p["h"])}
    return [(a["ref"], b["ref"]) for i, a in enumerate(panels) for b in panels[i + 1:] if cells(a) & cells(b)]


def test_a_panel_moved_or_resized_onto_others_pushes_them_down(sluice, page):
    for title in ["Notes", "Contacts", "Links"]:
        put_saved(sluice, "visualization", title.lower(), {"title": title, "type": "markdown", "markdown": f"# {title}"})
    put_saved(sluice, "dashboard", "layout", {"title": "Layout", "panels": [
        {"id": "1", "kind": "visualization", "ref": "notes", "x": 0, "y": 0, "w": 6, "h": 4},
        {"id": "2", "kind": "visualization", "ref": "contacts", "x": 6, "y": 0, "w": 6, "h": 4},
        {"id": "3", "kind": "visualization", "ref": "links", "x": 6, "y": 4, "w": 6, "h": 2},
    ]})
    page.goto(f"{sluice.ui_url}/#/dashboards?id=layout")
    panel(page, "Links").locator(".markdown h2").wait_for()

    # Keyboard: Notes one column wider covers Contacts, which goes below it, and Links below that.
    page.get_by_role("button", name="Resize Notes (arrow keys)").focus()
    page.keyboard.press("ArrowRight")
    assert grid_place(page, "Notes") == ["1", "span 7", "1", "span 4"]
    assert grid_place(page, "Contacts") == ["7", "span 6", "5", "span 4"]
    assert grid_place(page, "Links") == ["7", "span 6", "9", "span 2"]
    expect(page.locator(".visually-hidden[role=status]")).to_have_text(
        "Notes: column 1, row 1, 7 wide, 4 high; moved down: Contacts, Links")
    # Narrower again: the others stay where they were pushed, nothing floats up.
    page.keyboard.press("ArrowLeft")
    assert grid_place(page, "Contacts") == ["7", "span 6", "5", "span 4"]

    # Pointer: Contacts dragged onto Notes' place pushes Notes down by Contacts' height only,
    # however many places the drag passed over on the way.
    drag_title(page, "Contacts", -6, -4, steps=8)
    assert grid_place(page, "Contacts") == ["1", "span 6", "1", "span 4"]
    assert grid_place(page, "Notes") == ["1", "span 6", "5", "span 4"]
    assert grid_place(page, "Links") == ["7", "span 6", "9", "span 2"]
    screenshot(page, "dashboard-pushed-down")

    page.click('button:text-is("Save dashboard")')
    page.locator(".edit-toolbar .hint", has_text="saved Layout").wait_for()
    assert overlapping(saved(sluice, "dashboard", "layout")["attributes"]["panels"]) == []
