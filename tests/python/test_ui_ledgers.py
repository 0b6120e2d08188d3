"""The dashboard's ledger explorer in a real browser: PartiQL through QLDBSession from the page
(commits carry the digest the page computes), results as a table of faithful Ion, a document's
revision history with the difference between versions, and verification in the page that
accepts a real proof and rejects a tampered proof or revision."""

import base64
import re

from conftest import aws_client
from playwright.sync_api import expect
from ui_support import browser, page, screenshot  # noqa: F401 (fixtures)

# A revision real Amazon QLDB produced, with the hash QLDB computed (/work/shared/vectors).
QLDB_REVISION = """{
  blockAddress: {strandId: "JdxjkR9bSYB5jMHWcI464T", sequenceNo: 1},
  hash: {{hrhsCwsNPzLjCsOBHRtSkMCh2JGrB6q0eOGFswyQBPU=}},
  data: {OrderId: "12345", Item: "ABC12345", Quantity: 1},
  metadata: {id: "3Ax1in3Mt7L0YvVb6XhYyn", version: 0, txTime: 2020-07-05T18:22:14.019Z, txId: "84MQSpihZfxFzpQ4fGyXtX"}
}"""
QLDB_HASH = "hrhsCwsNPzLjCsOBHRtSkMCh2JGrB6q0eOGFswyQBPU="


def run(page, statement):
    page.fill('textarea[aria-label="PartiQL statement"]', statement)
    page.click('button:text-is("Run")')
    status = page.locator(".ledger-detail .response-status")
    expect(status).to_have_class(re.compile(r"\b(ok|failed)\b"))
    assert "ok" in status.get_attribute("class"), status.inner_text()
    return status.inner_text()


def cells(page, column):
    headers = page.locator(".ledger-detail table.results thead th").all_inner_texts()
    index = headers.index(column)
    return page.locator(f".ledger-detail table.results tbody tr td:nth-child({index + 1})").all_inner_texts()


def verify(page):
    page.click('button:text-is("Verify")')
    verdict = page.locator(".verdict")
    expect(verdict).to_have_text(re.compile(r"^(Verified|Rejected)"))
    return verdict.inner_text()


def test_partiql_history_and_verification_in_the_page(sluice, page):
    aws_client(sluice, "qldb").create_ledger(Name="vehicles", PermissionsMode="STANDARD")
    page.goto(f"{sluice.ui_url}/#/ledgers?ledger=vehicles")
    page.locator(".ledger-detail h2", has_text="vehicles").wait_for()

    run(page, "CREATE TABLE Cars")
    run(page, "CREATE INDEX ON Cars (VIN)")
    assert run(page, "INSERT INTO Cars `{VIN: \"1N4AL11D75C109151\", Price: 12.50, Made: 2021-03-04T, Key: {{aGVsbG8=}}}`").startswith("1 value")
    run(page, "UPDATE Cars SET Price = 13.00 WHERE VIN = '1N4AL11D75C109151'")
    run(page, "SELECT * FROM Cars")
    # Ion shown faithfully: the decimal keeps its scale, the timestamp its precision, the blob.
    assert cells(page, "Price") == ["13.00"]
    assert cells(page, "Made") == ["2021-03-04T"]
    assert cells(page, "Key") == ["{{aGVsbG8=}}"]
    assert cells(page, "VIN") == ["1N4AL11D75C109151"]
    run(page, "SELECT id FROM Cars BY id")
    document_id = cells(page, "id")[0]
    screenshot(page, "ledgers-partiql")

    # The table list shows the table and its index.
    page.reload()
    tables = page.locator('ul[aria-label="Tables"]')
    tables.locator("li", has_text="Cars").wait_for()
    assert "VIN" in tables.inner_text()

    page.fill('input[aria-label="Table"]', "Cars")
    page.fill('input[aria-label="Document id"]', document_id)
    page.click('button:text-is("Show history")')
    second = page.locator('section[aria-label="Version 1"]')
    second.wait_for()
    assert page.locator('section[aria-label="Version 0"]').count() == 1
    changed = second.locator("tr.diff-changed")
    assert changed.count() == 1
    assert changed.locator("td").all_inner_texts() == ["Price", "changed", "12.50", "13.00"]

    # Verify the latest version with a digest and proof fetched now, checked in the page.
    second.locator("button", has_text="Verify version 1").click()
    expect(page.locator(".verdict")).to_have_text(re.compile(r"^(Verified|Rejected)"))
    assert page.locator(".verdict").inner_text().startswith("Verified"), page.locator(".steps").inner_text()
    steps = page.locator(".steps li").all_inner_texts()
    assert steps[0].startswith("Ion hash of metadata")
    assert any(step.startswith("dot with proof node 1") for step in steps), steps
    assert steps[-1].startswith("✔ folded proof equal to the digest")
    screenshot(page, "ledgers-verified")

    revision = page.input_value('textarea[aria-label="Revision (Ion text)"]')
    proof = page.input_value('textarea[aria-label="Proof (Ion text)"]')

    # One bit flipped in the first proof hash: rejected at the digest.
    start = proof.index("{{") + 2
    end = proof.index("}}", start)
    node = bytearray(base64.b64decode(proof[start:end]))
    node[0] ^= 0x01
    tampered = proof[:start] + base64.b64encode(bytes(node)).decode() + proof[end:]
    page.fill('textarea[aria-label="Proof (Ion text)"]', tampered)
    assert verify(page).startswith("Rejected")
    assert page.locator(".steps li").last.inner_text().startswith("✘ folded proof equal to the digest")
    screenshot(page, "ledgers-rejected-proof")

    # The proof restored, the revision's data changed: rejected at the revision hash.
    page.fill('textarea[aria-label="Proof (Ion text)"]', proof)
    assert verify(page).startswith("Verified")
    assert "13.00" in revision
    page.fill('textarea[aria-label="Revision (Ion text)"]', revision.replace("13.00", "13.01"))
    assert verify(page).startswith("Rejected")
    assert any(s.startswith("✘ revision hash") for s in page.locator(".steps li").all_inner_texts())


def test_the_page_computes_the_hash_real_qldb_computed(sluice, page):
    aws_client(sluice, "qldb").create_ledger(Name="vectors", PermissionsMode="STANDARD")
    page.goto(f"{sluice.ui_url}/#/ledgers?ledger=vectors")
    page.locator(".ledger-detail h2", has_text="vectors").wait_for()
    # With an empty proof the revision hash itself must be the digest.
    page.fill('textarea[aria-label="Revision (Ion text)"]', QLDB_REVISION)
    page.fill('textarea[aria-label="Proof (Ion text)"]', "[]")
    page.fill('input[aria-label="Digest (base64)"]', QLDB_HASH)
    assert verify(page).startswith("Verified"), page.locator(".steps").inner_text()
    page.fill('input[aria-label="Digest (base64)"]', base64.b64encode(bytes(32)).decode())
    assert verify(page).startswith("Rejected")
