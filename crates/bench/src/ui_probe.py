"""The browser side of `sluice-bench ui` (crates/bench/src/ui.rs), run by it with Playwright for
Python driving headless Chromium. It prints one JSON object per line on stdout:

- for each view and run, a fresh browser context (an empty HTTP cache, as a first visit) opens
  the view by its URL, and `{"event": "view", ...}` gives the navigation's `domInteractive` and
  `loadEventEnd` and `ready`: the first animation frame at which the view shows its data (hit
  count, histogram and rows; every panel's numbers) with its controls in place, all in
  milliseconds since the navigation started;
- then the dashboard stays open with its saved 5 s auto-refresh: `{"event": "watching"}` when it
  is on screen, `{"event": "watched", "requests": N, ...}` after `watch_seconds`, counting the
  search API requests it sent meanwhile, so that the harness can read the server's CPU time
  between the two lines.

Arguments: ui_url chromium runs watch_seconds dashboard_id pattern_id.
"""

import json
import sys

from playwright.sync_api import sync_playwright

# Milliseconds a view may take before the probe gives up on it (the bound measured is 1 s).
VIEW_TIMEOUT_MS = 60_000

# Each view: its URL's hash, and the page-side condition that says it is shown and usable; the
# condition returns what the harness checks (numbers shown), or null while not ready.
VIEWS = {
    "console": ("#/console", """() => {
        const send = [...document.querySelectorAll('button')].find(b => b.textContent === 'Send');
        return send && document.querySelector('.editor-input') ? {} : null;
    }"""),
    "discover": ("#/discover?pattern={pattern}&from=now-24h&to=now", """() => {
        const status = document.querySelector('.response-status.ok');
        const chart = document.querySelector('.histogram:not([hidden])');
        const rows = document.querySelectorAll('.records tbody tr').length;
        const search = [...document.querySelectorAll('button')].find(b => b.textContent === 'Search');
        if (!status || !chart || rows === 0 || !search) return null;
        return {status: status.textContent, histogram: chart.getAttribute('aria-label'), rows};
    }"""),
    "dashboard": ("#/dashboards?id={dashboard}", """() => {
        const panels = [...document.querySelectorAll('.dashboard-grid .panel')];
        if (panels.length === 0) return null;
        const shown = {};
        for (const panel of panels) {
            const metric = panel.querySelector('.metric[data-value]');
            const chart = panel.querySelector('table.chart-data tbody tr');
            const search = panel.querySelector('table.search-panel tbody tr');
            if (metric && metric.dataset.value !== '') shown[panel.getAttribute('aria-label')] = metric.dataset.value;
            else if (chart || search) shown[panel.getAttribute('aria-label')] = 'shown';
            else return null;
        }
        return shown;
    }"""),
}


def emit(**fields):
    print(json.dumps(fields), flush=True)


def open_view(browser, url, condition):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(VIEW_TIMEOUT_MS)
    page.goto(url)
    # Polled on every animation frame: `ready` is the first frame that showed the data.
    handle = page.wait_for_function(
        f"() => {{ const shown = ({condition})(); return shown && {{shown, at: performance.now()}}; }}",
        polling="raf")
    ready = handle.json_value()
    timing = page.evaluate("""() => {
        const [navigation] = performance.getEntriesByType('navigation');
        return {interactive: navigation.domInteractive, loaded: navigation.loadEventEnd};
    }""")
    return context, page, {"ready": ready["at"], "shown": ready["shown"], **timing}


def main():
    ui_url, chromium, runs, watch_seconds, dashboard, pattern = sys.argv[1:7]
    with sync_playwright() as playwright:
        # --no-sandbox: the bench may run as root, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for view, (fragment, condition) in VIEWS.items():
            url = f"{ui_url}/{fragment.format(pattern=pattern, dashboard=dashboard)}"
            for run in range(int(runs)):
                context, _, measured = open_view(browser, url, condition)
                context.close()
                emit(event="view", view=view, run=run, **measured)

        fragment, condition = VIEWS["dashboard"]
        url = f"{ui_url}/{fragment.format(pattern=pattern, dashboard=dashboard)}"
        context, page, measured = open_view(browser, url, condition)
        requests = []

        def count(request):
            if any(endpoint in request.url for endpoint in ("/_search", "/_msearch", "/_count")):
                requests.append(request.url)

        page.on("request", count)
        emit(event="watching", **measured)
        # Waiting inside Playwright (not time.sleep) keeps the page's events flowing.
        page.wait_for_timeout(float(watch_seconds) * 1000)
        last = page.locator(".last-refresh").text_content()
        emit(event="watched", requests=len(requests), last_refresh=last)
        context.close()
        browser.close()


if __name__ == "__main__":
    main()
