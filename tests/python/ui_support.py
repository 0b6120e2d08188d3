"""Browser fixtures for the dashboard's tests (test_ui_*.py): Debian's Chromium driven by
Playwright (never a browser Playwright downloads), one page per test that fails the test on any
page error or console error (a CSP violation included), and screenshots saved under
test-artifacts/ui/ (gitignored) for people to look at.

Wait with locators and `expect`, never `page.wait_for_function`: its polling evaluates strings in
the page, which the dashboard's CSP (no 'unsafe-eval') refuses whenever the first check fails."""

import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from conftest import ROOT

ARTIFACTS = ROOT / "test-artifacts" / "ui"
# Playwright's per-action wait: the debug binary answers within this even on a loaded machine.
ACTION_TIMEOUT_MS = 30_000


def chromium_path():
    path = os.environ.get("SLUICE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        raise RuntimeError("the dashboard's tests need Chromium: `apt-get install chromium` (or set SLUICE_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(ACTION_TIMEOUT_MS)
    problems = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    # An HTTP error status the page asked for (a console's 404) is logged by Chromium as an error
    # too; it is an answer, not a problem of the page.
    page.on(
        "console",
        lambda message: message.type == "error"
        and not message.text.startswith("Failed to load resource: the server responded with a status of")
        and problems.append(f"console: {message.text}"),
    )
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not problems, problems


def screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# The console's editor; `send` types a request into it and returns the status line and body.
EDITOR = "textarea.editor-input"


def send(page, text):
    page.fill(EDITOR, text)
    page.press(EDITOR, "Control+Enter")
    status = page.locator(".response-status")
    status.filter(has_text=" ms").wait_for()
    return status.inner_text(), page.locator(".response-body").inner_text()


__all__ = ["browser", "page", "screenshot", "send", "EDITOR", "Path"]
