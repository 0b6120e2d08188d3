"""The dashboard's console in a real browser: it sends requests to the search API and shows the
formatted, highlighted answer; completes endpoints and Query DSL keys; keeps a history; copies a
request as curl; and keeps the request in the URL."""

import json
import subprocess

from conftest import unique
from playwright.sync_api import expect
from ui_support import EDITOR, browser, page, screenshot, send  # noqa: F401 (fixtures)



def test_the_console_sends_a_search_and_shows_the_response(shared_sluice, page):
    index = unique("console")
    page.goto(f"{shared_sluice.ui_url}/#/console")
    status, body = send(page, f'PUT {index}/_doc/1?refresh=true\n{{"message": "bye", "n": 7}}')
    assert status.startswith("201"), (status, body)
    status, body = send(page, f'GET {index}/_search\n{{\n  "query": {{"match": {{"message": "bye"}}}}\n}}')
    assert status.startswith("200 OK"), status
    answer = json.loads(body)
    assert answer["hits"]["total"]["value"] == 1
    assert answer["hits"]["hits"][0]["_source"] == {"message": "bye", "n": 7}
    # Formatted (two-space indentation) and highlighted: keys and numbers in their own spans.
    assert '\n  "hits": {' in body
    assert page.locator('.response-body .tok-key', has_text='"_source"').count() == 1
    assert page.locator('.response-body .tok-number', has_text="7").count() >= 1
    # A text answer (_cat) is shown as it came.
    status, body = send(page, f"GET _cat/indices/{index}?h=index,docs.count")
    assert body.split() == [index, "1"]
    # An error keeps Elasticsearch's shape and shows as a failure.
    status, body = send(page, f"GET {index}-missing/_search")
    assert status.startswith("404")
    assert json.loads(body)["error"]["type"] == "index_not_found_exception"
    assert "failed" in page.locator(".response-status").get_attribute("class")
    # The request is in the URL: a reload shows it again.
    page.reload()
    assert page.input_value(EDITOR) == f"GET {index}-missing/_search"
    screenshot(page, "console-search")


def test_completion_history_and_curl(shared_sluice, page):
    page.goto(f"{shared_sluice.ui_url}/#/console")
    page.fill(EDITOR, "")
    page.type(EDITOR, "GET _ca")
    options = page.locator("#console-completions li")
    assert "_cat/indices?v" in options.all_inner_texts()
    page.keyboard.press("Tab")
    assert page.input_value(EDITOR).startswith("GET _cat/")
    page.fill(EDITOR, 'GET _search\n{\n  "qu')
    page.focus(EDITOR)
    page.keyboard.press("End")
    page.type(EDITOR, "e")
    assert options.all_inner_texts()[:2] == ["query", "query_string"]
    page.keyboard.press("Enter")
    assert page.input_value(EDITOR).endswith('"query')

    send(page, "GET _cat/health")
    send(page, "GET _cluster/health")
    page.reload()
    history = page.locator('select[aria-label="History"] option').all_inner_texts()
    assert history[1:3] == ["GET _cluster/health", "GET _cat/health"]

    page.fill(EDITOR, "POST idx/_search\n{\"query\": {\"term\": {\"who\": \"it's\"}}}")
    page.click("text=Copy as curl")
    curl = page.input_value('textarea[aria-label="curl command"]')
    assert curl.startswith(f"curl -X POST '{shared_sluice.es_url}/idx/_search'")
    # The command runs as it is shown, quotes and all.
    ran = subprocess.run(["sh", "-c", curl], capture_output=True, text=True, check=True)
    assert json.loads(ran.stdout)["error"]["type"] == "index_not_found_exception"


def test_a_slow_request_can_be_cancelled(shared_sluice, page):
    page.goto(f"{shared_sluice.ui_url}/#/console")
    # Block the search API's answer inside the browser so the request stays in flight.
    page.route(f"{shared_sluice.es_url}/**", lambda route: None)
    page.fill(EDITOR, "GET _search")
    page.click("text=Send")
    cancel = page.locator("button", has_text="Cancel")
    cancel.wait_for(state="visible")
    expect(cancel).to_be_enabled()
    cancel.click()
    page.locator(".response-status", has_text="cancelled").wait_for()
