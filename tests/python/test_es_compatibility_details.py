"""Details where Sluice must answer exactly as Elasticsearch 8 does: wrong methods (405), unknown
parameters, versioned gets, bulk framing, `_source` returned byte for byte, metadata fields,
date detection, path decoding, `_update` with `_source`, `track_total_hits`, content types."""

import http.client
import json
import urllib.parse

import pytest


def call(server, method, path, body=None, headers=None):
    url = urllib.parse.urlsplit(server.es_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        all_headers = {"Content-Type": "application/json"}
        all_headers.update(headers or {})
        connection.request(method, path, body=body.encode() if isinstance(body, str) else body, headers=all_headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


# 1. A known URL with a wrong method: Elasticsearch answers 405 with an Allow header and
#    {"error":"Incorrect HTTP method for uri [/] and method [DELETE], allowed: [HEAD, GET]","status":405}.
#    Sluice answers 400 illegal_argument_exception "no handler found for uri [/] and method [DELETE]".
@pytest.mark.parametrize("method, path", [("DELETE", "/"), ("PATCH", "/i/_doc/1"), ("DELETE", "/_bulk"), ("GET", "/i/_update/1")])
def test_wrong_method_is_405_with_allow_header(sluice, method, path):
    status, headers, raw = call(sluice, method, path, "{}")
    assert status == 405, raw
    assert "allow" in {k.lower() for k in headers}
    assert "Incorrect HTTP method for uri" in json.dumps(json.loads(raw))


# 3. Unknown URL parameters: Elasticsearch rejects them with 400 illegal_argument_exception
#    "request [/i/_doc/1] contains unrecognized parameter: [bogus]". Sluice silently ignores them
#    (a typo such as ?refesh=true is then silently lost).
def test_unrecognized_parameter_is_400(sluice):
    call(sluice, "PUT", "/i/_doc/1", '{"a":1}')
    for method, path in (("GET", "/i/_doc/1?bogus=1"), ("PUT", "/i/_doc/1?refesh=true"), ("POST", "/i/_search?bogus=1")):
        status, _, raw = call(sluice, method, path, '{"a":1}' if method == "PUT" else None)
        assert status == 400, (method, path, raw)
        assert "contains unrecognized parameter" in json.loads(raw)["error"]["reason"]


# 4. GET with ?version=N that does not match: Elasticsearch answers 409
#    version_conflict_engine_exception "[1]: version conflict, current version [1] is different than
#    the one provided [5]". Sluice ignores the parameter and returns the document (200).
def test_get_with_wrong_version_is_409(sluice):
    call(sluice, "PUT", "/i/_doc/1", '{"a":1}')
    status, _, raw = call(sluice, "GET", "/i/_doc/1?version=5")
    assert status == 409, raw
    assert json.loads(raw)["error"]["reason"] == "[1]: version conflict, current version [1] is different than the one provided [5]"


# 5. A bulk body whose last line has no trailing newline: Elasticsearch answers 400
#    illegal_argument_exception "The bulk request must be terminated by a newline [\\n]".
#    Sluice accepts it and writes the document.
def test_bulk_without_final_newline_is_400(sluice):
    status, _, raw = call(sluice, "POST", "/_bulk", '{"index":{"_index":"i","_id":"1"}}\n{"a":1}', {"Content-Type": "application/x-ndjson"})
    assert status == 400, raw
    assert "must be terminated by a newline" in json.loads(raw)["error"]["reason"]


# 6. _source is not returned as sent. Elasticsearch stores and returns the source bytes verbatim.
#    Sluice re-serialises it through serde_json::Value: 1e3 -> 1000.0, integers above u64 become
#    floats (12345678901234567890123 -> 1.2345678901234568e+22, precision lost), "\u00e9" escapes
#    are rewritten. Seen in GET _doc, GET _source, _mget and _search hits.
def test_source_is_returned_verbatim(sluice):
    source = '{"zeta":1,"e":1e3,"f":1.50,"big":12345678901234567890123,"s":"caf\\u00e9"}'
    call(sluice, "PUT", "/i/_doc/1?refresh=true", source)
    status, _, raw = call(sluice, "GET", "/i/_source/1")
    assert status == 200
    assert raw == source.encode()


# 8. Metadata fields inside a document: Elasticsearch answers 400 document_parsing_exception
#    "[1:7] Field [_id] is a metadata field and cannot be added inside a document. Use the index API
#    request parameters." Sluice accepts {"_id":"x"}, {"_index":"other"}, {"_version":3}, {"_source":1}.
@pytest.mark.parametrize("field", ["_id", "_index", "_version", "_source", "_seq_no"])
def test_metadata_field_inside_document_is_400(sluice, field):
    status, _, raw = call(sluice, "PUT", "/i/_doc/1", json.dumps({field: "x"}))
    assert status == 400, raw
    body = json.loads(raw)
    assert body["error"]["type"] == "document_parsing_exception"
    assert f"Field [{field}] is a metadata field and cannot be added inside a document" in body["error"]["reason"]


# 9. Dynamic date detection: Elasticsearch's default dynamic_date_formats are
#    ["strict_date_optional_time", "yyyy/MM/dd HH:mm:ss Z||yyyy/MM/dd Z"], so {"create_date": "2015/09/02"}
#    is mapped {"type":"date","format":"yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"} (the example of
#    the "Dynamic field mapping / Date detection" docs). Sluice maps it as text + keyword.
def test_slash_dates_are_detected(sluice):
    call(sluice, "PUT", "/i/_doc/1", '{"create_date":"2015/09/02"}')
    status, _, raw = call(sluice, "GET", "/i/_mapping")
    mapping = json.loads(raw)["i"]["mappings"]["properties"]["create_date"]
    assert mapping == {"type": "date", "format": "yyyy/MM/dd HH:mm:ss||yyyy/MM/dd||epoch_millis"}


# 10. Invalid percent-encoding in the path. Elasticsearch answers 400 (bad_request / illegal
#     argument: "unable to decode"/"invalid escape sequence"). Sluice decodes lossily: PUT /%FF%FE
#     creates an index literally named "\ufffd\ufffd", and PUT /i/_doc/%zz stores id "%zz".
def test_invalid_percent_encoding_is_400(sluice):
    status, _, raw = call(sluice, "PUT", "/%FF%FE")
    assert status == 400, raw
    status, _, raw = call(sluice, "PUT", "/i/_doc/%zz", "{}")
    assert status == 400, raw


# 12. _update with "_source": true (the clients' `source=True`): Elasticsearch adds the updated
#     document to the response, "get": {"_seq_no", "_primary_term", "found": true, "_source": {...}}.
#     Sluice accepts the field and ignores it: no "get" in the response.
def test_update_returns_source_when_asked(sluice):
    call(sluice, "PUT", "/i/_doc/1", '{"a":1}')
    status, _, raw = call(sluice, "POST", "/i/_update/1", '{"doc":{"b":2},"_source":true}')
    assert status == 200
    body = json.loads(raw)
    assert body["get"]["found"] is True and body["get"]["_source"] == {"a": 1, "b": 2}


# 13. track_total_hits=false: Elasticsearch leaves "total" out of "hits". Sluice still sends it.
def test_track_total_hits_false_omits_total(sluice):
    call(sluice, "PUT", "/i/_doc/1?refresh=true", '{"a":1}')
    status, _, raw = call(sluice, "POST", "/i/_search?track_total_hits=false", "{}")
    assert status == 200
    assert "total" not in json.loads(raw)["hits"]


# 14. Unsupported Content-Type: Elasticsearch answers 406
#     {"error":"Content-Type header [text/plain] is not supported","status":406} and writes nothing.
#     Sluice parses the body as JSON whatever the Content-Type says and writes the document (201).
#     (And application/cbor, which Elasticsearch accepts, is parsed as JSON and refused with 400.)
def test_unsupported_content_type_is_406(sluice):
    status, _, raw = call(sluice, "PUT", "/i/_doc/1", '{"a":1}', {"Content-Type": "text/plain"})
    assert status == 406, raw
    assert json.loads(raw)["status"] == 406


# 15. version_type=external_gt: Elasticsearch's VersionType.fromString accepts "external_gt" as
#     another name of "external". Sluice answers 400 "No version type match [external_gt]".
def test_external_gt_is_external(sluice):
    status, _, raw = call(sluice, "PUT", "/i/_doc/1?version=3&version_type=external_gt", '{"a":1}')
    assert status == 201, raw
    status, _, raw = call(sluice, "PUT", "/i/_doc/1?version=3&version_type=external_gt", '{"a":1}')
    assert status == 409, raw


# Duplicate keys: Elasticsearch's strict duplicate detection answers 400 "Duplicate field 'q'",
# in documents and in bulk sources alike; nothing is written.
def test_duplicate_keys_are_400(sluice):
    status, _, raw = call(sluice, "PUT", "/i/_doc/1", '{"q":1,"q":2}')
    assert status == 400, raw
    assert "Duplicate field 'q'" in json.loads(raw)["error"]["reason"]
    status, _, raw = call(sluice, "POST", "/_bulk", '{"index":{"_index":"i","_id":"2"}}\n{"a":{"b":1,"b":2}}\n', {"Content-Type": "application/x-ndjson"})
    item = json.loads(raw)["items"][0]["index"]
    assert item["status"] == 400 and "Duplicate field 'b'" in item["error"]["reason"]
    assert call(sluice, "GET", "/i/_doc/2")[0] == 404
