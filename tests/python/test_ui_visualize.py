"""Visualize in a real browser, built by clicking as a user would: the `stockdata*` line chart of
the average price per second split by ticker, and the bar chart of average penalty points by
postcode from a ledger's table indexed into search. The tests read the numbers and series each
chart shows from its accessible data table, save the visualizations by name, reopen them by URL,
and click a bucket into a filter pill."""

import json
import time
import urllib.parse

from pyqldb.driver.qldb_driver import QldbDriver

from conftest import aws_client
from playwright.sync_api import expect
from ui_support import browser, page, screenshot  # noqa: F401 (fixtures)
from vis_support import (bulk, chart_rows, choose, count, create_index_pattern, new_visualization,
                         save_visualization, saved, wait_until)


def iso_ms(epoch_ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_ms // 1000)) + f".{epoch_ms % 1000:03d}Z"


def test_the_stock_line_chart_averages_price_per_second_split_by_ticker(sluice, page):
    # Three whole seconds a minute ago; two tickers; several trades in some seconds.
    base = (int(time.time()) - 60) * 1000
    trades = [(0, "AMZN", 10.0), (0, "AMZN", 20.0), (1, "AMZN", 30.0),
              (0, "MSFT", 100.0), (1, "MSFT", 50.0), (1, "MSFT", 70.0), (2, "MSFT", 80.0)]
    bulk(sluice, "stockdata", [{"timestamp": iso_ms(base + second * 1000 + 100 * i), "ticker_symbol": ticker, "price": price}
                               for i, (second, ticker, price) in enumerate(trades)])
    create_index_pattern(page, sluice, "stockdata*", "timestamp")

    new_visualization(page, sluice, "Line")
    choose(page, "Index pattern", "stockdata*")
    choose(page, "Metric", "avg")
    choose(page, "Metric field", "price")
    expect(page.get_by_label("Bucket", exact=True)).to_have_value("date_histogram")
    expect(page.get_by_label("Bucket field", exact=True)).to_have_value("timestamp")
    # Only aggregatable fields split: the text field is not offered, its keyword is.
    split_options = page.get_by_label("Split series by", exact=True).locator("option").all_inner_texts()
    assert "ticker_symbol.keyword" in split_options and "ticker_symbol" not in split_options
    choose(page, "Interval", "1s")
    choose(page, "Split series by", "ticker_symbol.keyword")
    expected = {
        ("AMZN", base): 15.0, ("AMZN", base + 1000): 30.0,
        ("MSFT", base): 100.0, ("MSFT", base + 1000): 60.0, ("MSFT", base + 2000): 80.0,
    }

    def shown():
        return {(series, int(key)): value for series, key, value in chart_rows(page.locator(".vis-preview"))}

    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(len(expected))
    assert shown() == expected
    assert page.locator(".vis-preview table.chart-data th").first.inner_text() == "ticker_symbol.keyword"
    # The chart itself is drawn (a canvas) and described for assistive technology.
    page.locator(".vis-preview .chart canvas").first.wait_for()
    assert "Average of price" in page.locator(".vis-preview .chart").get_attribute("aria-label")
    screenshot(page, "visualize-stock-line")

    save_visualization(page, "Stock price by ticker")
    attributes = saved(sluice, "visualization", "stock-price-by-ticker")["attributes"]
    assert (attributes["type"], attributes["metric"], attributes["metricField"], attributes["interval"], attributes["split"]) == (
        "line", "avg", "price", "1s", "ticker_symbol.keyword")
    assert "id=stock-price-by-ticker" in page.url and "vis=" in page.url

    # The saved visualization reopens by its id alone.
    page.goto("about:blank")
    page.goto(f"{sluice.ui_url}/#/visualize?id=stock-price-by-ticker")
    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(len(expected))
    assert shown() == expected
    expect(page.get_by_label("Title", exact=True)).to_have_value("Stock price by ticker")

    # The list shows it; a data table of the same aggregation filters by a click on a row.
    page.goto(f"{sluice.ui_url}/#/visualize")
    page.get_by_role("link", name="Stock price by ticker").wait_for()
    page.goto(f"{sluice.ui_url}/#/visualize?id=stock-price-by-ticker")
    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(len(expected))
    choose(page, "Type", "Data table")
    page.locator(".vis-preview table.data-table").wait_for()
    page.get_by_role("button", name="Filter on", exact=False).first.wait_for()
    amzn = page.locator(".vis-preview table.data-table tbody tr[data-series=AMZN] button").first
    amzn.click()
    page.locator(".pills li", has_text="ticker_symbol.keyword: AMZN").wait_for()
    expect(page.locator(".vis-preview table.data-table tbody tr")).to_have_count(1)
    assert "filters=" in page.url
    assert page.input_value('select[aria-label="Time range"]') == "absolute", "a time bucket narrows the range"


def test_average_points_by_postcode_from_a_ledger_table(sluice, page):
    aws_client(sluice, "qldb").create_ledger(Name="Licences", PermissionsMode="STANDARD", DeletionProtection=False)
    driver = QldbDriver("Licences", endpoint_url=sluice.aws_url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")
    driver.execute_lambda(lambda txn: txn.execute_statement("CREATE TABLE BicycleLicence"))
    licences = [("Ana", "EC1A", 0), ("Bo", "EC1A", 3), ("Cy", "N1", 6), ("Di", "N1", 2), ("Ed", "SW1", 5)]
    for name, postcode, points in licences:
        driver.execute_lambda(lambda txn, row=(name, postcode, points): txn.execute_statement(
            "INSERT INTO BicycleLicence ?", {"Name": row[0], "Postcode": row[1], "PenaltyPoints": row[2]}))
    # The ledger's table is indexed into search by the node itself.
    wait_until("the licences in search", lambda: count(sluice, "licences-bicyclelicence") == len(licences))

    create_index_pattern(page, sluice, "licences-*", "")
    new_visualization(page, sluice, "Vertical bar")
    choose(page, "Index pattern", "licences-*")
    choose(page, "Metric", "avg")
    choose(page, "Metric field", "PenaltyPoints")
    choose(page, "Bucket", "Terms")
    # Terms offer aggregatable fields only: Postcode (text) is not one, its keyword is.
    bucket_options = page.get_by_label("Bucket field", exact=True).locator("option").all_inner_texts()
    assert "Postcode.keyword" in bucket_options and "Postcode" not in bucket_options
    choose(page, "Bucket field", "Postcode.keyword")
    choose(page, "Sort", "Key, ascending")
    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(3)
    rows = chart_rows(page.locator(".vis-preview"))
    assert rows == [(None, "EC1A", 1.5), (None, "N1", 4.0), (None, "SW1", 5.0)]
    assert page.locator(".vis-preview table.chart-data tbody td.number").all_inner_texts() == ["1.5", "4", "5"]
    screenshot(page, "visualize-postcode-bar")

    # Sorted by the metric instead, and cut to the top two.
    choose(page, "Sort", "Metric, descending")
    page.get_by_label("Size", exact=True).fill("2")
    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(2)
    assert chart_rows(page.locator(".vis-preview")) == [(None, "SW1", 5.0), (None, "N1", 4.0)]
    page.get_by_label("Size", exact=True).fill("10")
    choose(page, "Sort", "Key, ascending")
    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(3)
    save_visualization(page, "Average points by postcode")
    attributes = saved(sluice, "visualization", "average-points-by-postcode")["attributes"]
    assert (attributes["type"], attributes["bucket"], attributes["bucketField"]) == ("bar", "terms", "Postcode.keyword")

    # The URL alone (the editor's state) reopens the same chart, even unsaved.
    state = json.loads(urllib.parse.parse_qs(page.url.split("?", 1)[1])["vis"][0])
    assert state["metricField"] == "PenaltyPoints"
    url = page.url
    page.goto("about:blank")
    page.goto(url)
    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(3)
    assert chart_rows(page.locator(".vis-preview")) == [(None, "EC1A", 1.5), (None, "N1", 4.0), (None, "SW1", 5.0)]

    # A click on a bar filters by its postcode: one bar, clicked in the middle of the chart.
    page.get_by_label("Size", exact=True).fill("1")
    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(1)
    page.locator(".vis-preview .chart canvas").first.wait_for()
    # Hovering shows a tooltip with the bucket and its number (built as DOM, within the CSP).
    page.locator(".vis-preview .chart").hover()
    expect(page.locator(".vis-preview .chart-tooltip")).to_contain_text("EC1A")
    expect(page.locator(".vis-preview .chart-tooltip")).to_contain_text("Average of PenaltyPoints: 1.5")
    page.locator(".vis-preview .chart").click()
    page.locator(".pills li", has_text="Postcode.keyword: EC1A").wait_for()
    assert "Postcode.keyword" in urllib.parse.unquote(page.url)


def test_every_chart_type_draws_from_the_same_aggregation(sluice, page):
    now_ms = int(time.time()) * 1000
    bulk(sluice, "shop-1", [{"@timestamp": iso_ms(now_ms - 30_000 - i * 1000), "category": category, "price": price}
                            for i, (category, price) in enumerate([("books", 10), ("books", 30), ("games", 50), ("toys", 5)])])
    create_index_pattern(page, sluice, "shop-*", "@timestamp")
    new_visualization(page, sluice, "Pie / donut")
    choose(page, "Index pattern", "shop-*")
    choose(page, "Metric", "sum")
    choose(page, "Metric field", "price")
    choose(page, "Bucket field", "category.keyword")
    page.get_by_label("Donut", exact=True).check()
    expect(page.locator(".vis-preview table.chart-data tbody tr")).to_have_count(3)
    sums = {key: value for _, key, value in chart_rows(page.locator(".vis-preview"))}
    assert sums == {"books": 40.0, "games": 50.0, "toys": 5.0}
    for type_label in ["Horizontal bar", "Area", "Vertical bar", "Line"]:
        choose(page, "Type", type_label)
        page.locator(".vis-preview .chart canvas").first.wait_for()
        assert {key: value for _, key, value in chart_rows(page.locator(".vis-preview"))} == sums, type_label
    # A heat map needs a second field for its y axis.
    choose(page, "Type", "Heat map")
    page.locator(".vis-preview .placeholder", has_text="y axis").wait_for()
    choose(page, "Bucket", "Date histogram")
    choose(page, "Split series by", "category.keyword")
    page.locator(".vis-preview .chart canvas").first.wait_for()
    assert sum(value for _, _, value in chart_rows(page.locator(".vis-preview"))) == 95.0
    screenshot(page, "visualize-heatmap")
    # A metric with a query of its own, and a markdown panel.
    choose(page, "Type", "Metric")
    page.get_by_label("Filter (query)", exact=True).fill("category:books")
    expect(page.locator(".vis-preview .metric")).to_have_attribute("data-value", "40")
    assert page.locator(".vis-preview .metric").get_attribute("aria-label").endswith(": 40")
    choose(page, "Metric", "median")
    expect(page.locator(".vis-preview .metric")).to_have_attribute("data-value", "20")
    choose(page, "Type", "Markdown")
    page.get_by_label("Markdown", exact=True).fill("# Shop\nSales of **all** toys\n- one\n- two")
    page.locator(".vis-preview .markdown h2", has_text="Shop").wait_for()
    assert page.locator(".vis-preview .markdown strong").inner_text() == "all"
    assert page.locator(".vis-preview .markdown li").all_inner_texts() == ["one", "two"]
