"""The dashboard under `--security`, in a real browser: the page asks for a login, gets a
temporary access key for the user, and signs every request it sends to the search API, the AWS
APIs and its own /api with it (SigV4), so the console, the pipeline monitor and the ledger
explorer work; a user's roles still apply; logging out ends the key."""

import json

from playwright.sync_api import expect
from opensearchpy import OpenSearch
from ui_support import EDITOR, browser, page, screenshot, send  # noqa: F401 (fixtures)



def log_in(page, user, password):
    page.fill("#login-username", user)
    page.fill("#login-password", password)
    page.click("form.login button[type=submit]")


def test_the_dashboard_logs_in_and_signs_its_requests(secure_sluice, page):
    page.goto(f"{secure_sluice.ui_url}/#/console")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    log_in(page, "admin", "not-the-password")
    expect(page.locator("form.login .status")).to_contain_text("wrong user name or password")

    log_in(page, "admin", secure_sluice.admin_password)
    expect(page.locator(EDITOR)).to_be_visible()
    status, body = send(page, 'PUT signed/_doc/1?refresh=true\n{"message": "hello"}')
    assert status.startswith("201"), (status, body)
    status, body = send(page, 'GET signed/_search?q=message:hello')
    assert status.startswith("200"), (status, body)
    assert json.loads(body)["hits"]["total"]["value"] == 1
    status, body = send(page, "GET _security/_authenticate")
    assert json.loads(body)["username"] == "admin"
    # The AWS port: the pipeline monitor lists streams and reads /metrics, signed.
    page.goto(f"{secure_sluice.ui_url}/#/pipeline")
    expect(page.get_by_role("heading", name="Pipeline")).to_be_visible()
    expect(page.locator(".error")).to_have_count(0)
    page.goto(f"{secure_sluice.ui_url}/#/ledgers")
    expect(page.locator(".error")).to_have_count(0)
    screenshot(page, "login-signed")

    page.click("button.log-out")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()


def test_a_read_only_user_logged_in_can_search_but_not_write(secure_sluice, page):
    security = OpenSearch(secure_sluice.es_url, http_auth=("admin", secure_sluice.admin_password))
    security.security.create_user(
        username="viewer", body={"password": "viewer-password", "opendistro_security_roles": ["readall"]}
    )
    page.goto(f"{secure_sluice.ui_url}/#/console")
    log_in(page, "viewer", "viewer-password")
    expect(page.locator(EDITOR)).to_be_visible()
    status, body = send(page, "GET _search")
    assert status.startswith("200"), (status, body)
    status, body = send(page, 'PUT elsewhere/_doc/1\n{"n": 1}')
    assert status.startswith("403"), (status, body)
    assert json.loads(body)["error"]["type"] == "security_exception"
