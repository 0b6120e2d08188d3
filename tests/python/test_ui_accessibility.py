"""Accessibility of every view of the dashboard, in a real browser: axe-core (installed by the
build from the UI's lockfile) finds no serious or critical violation of WCAG 2 A/AA in either
theme, and the keyboard reaches the skip link and the navigation with a visible focus."""

import json
import urllib.request

import pytest

from conftest import BINARY, aws_client
from ui_support import browser, page, screenshot  # noqa: F401 (fixtures)

VIEWS = ["discover", "console", "ledgers?ledger=books", "pipeline?refresh=0", "visualize", "visualize?id=kinds",
         "dashboards", "dashboards?id=overview", "saved-objects"]
IMPACTS_REFUSED = {"serious", "critical"}


def axe_source():
    # build.rs installs the UI's npm packages, axe-core among its dev dependencies, in OUT_DIR.
    candidates = sorted(
        BINARY.parent.glob("build/sluice-ui-*/out/web/node_modules/axe-core/axe.min.js"),
        key=lambda path: path.stat().st_mtime,
    )
    if not candidates:
        raise RuntimeError(f"axe-core is not under {BINARY.parent}/build: build the binary with `cargo build -p sluice`")
    return candidates[-1].read_text()


@pytest.fixture(scope="module")
def axe():
    return axe_source()


@pytest.fixture(scope="module")
def populated(shared_sluice):
    aws_client(shared_sluice, "qldb").create_ledger(Name="books", PermissionsMode="STANDARD")
    urllib.request.urlopen(urllib.request.Request(
        shared_sluice.ui_url + "/api/saved_objects/index-pattern/all", method="PUT",
        data=json.dumps({"attributes": {"title": "*"}}).encode(), headers={"Content-Type": "application/json"}))
    # A bar chart and a dashboard of it with a markdown panel, for the editor's and the grid's checks.
    urllib.request.urlopen(urllib.request.Request(
        shared_sluice.es_url + "/a11y/_doc/1?refresh=true", method="PUT",
        data=json.dumps({"kind": "one", "n": 1}).encode(), headers={"Content-Type": "application/json"}))
    for kind, object_id, attributes in [
        ("visualization", "kinds", {"title": "Kinds", "type": "bar", "pattern": "all", "metric": "count",
                                    "bucket": "terms", "bucketField": "kind.keyword"}),
        ("visualization", "notes", {"title": "Notes", "type": "markdown", "markdown": "# Notes\nsome **text**"}),
        ("dashboard", "overview", {"title": "Overview", "panels": [
            {"id": "p1", "kind": "visualization", "ref": "kinds", "x": 0, "y": 0, "w": 6, "h": 4},
            {"id": "p2", "kind": "visualization", "ref": "notes", "x": 6, "y": 0, "w": 6, "h": 4}]}),
    ]:
        urllib.request.urlopen(urllib.request.Request(
            f"{shared_sluice.ui_url}/api/saved_objects/{kind}/{object_id}", method="PUT",
            data=json.dumps({"attributes": attributes}).encode(), headers={"Content-Type": "application/json"}))
    return shared_sluice


@pytest.mark.parametrize("theme", ["light", "dark"])
@pytest.mark.parametrize("view", VIEWS)
def test_no_serious_violations(populated, browser, axe, view, theme):
    context = browser.new_context(color_scheme=theme)
    page = context.new_page()
    page.goto(f"{populated.ui_url}/#/{view}")
    page.locator("h1.view-title").wait_for()
    page.wait_for_load_state("networkidle")
    # Evaluated over the DevTools protocol, which the page's CSP does not govern.
    page.evaluate(axe)
    result = page.evaluate("axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}})")
    serious = [
        {"id": v["id"], "impact": v["impact"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in IMPACTS_REFUSED
    ]
    context.close()
    assert not serious, json.dumps(serious, indent=1)


def test_the_keyboard_reaches_the_skip_link_and_the_navigation(shared_sluice, page):
    page.goto(f"{shared_sluice.ui_url}/#/console")
    page.locator("h1.view-title").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip-link"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.dataset.view") == "discover"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "focus is visible"
    page.keyboard.press("Enter")
    page.wait_for_url("**/#/discover")
    screenshot(page, "keyboard-focus")
