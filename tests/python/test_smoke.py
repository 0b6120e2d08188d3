"""The server starts, answers `GET /` as Elasticsearch does, and stops cleanly on SIGTERM."""

import json
import urllib.request


def test_root_and_clean_stop(sluice):
    with urllib.request.urlopen(sluice.es_url + "/") as response:
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
        body = json.load(response)
    assert body["tagline"] == "You Know, for Search"
    assert sluice.stop() == 0
