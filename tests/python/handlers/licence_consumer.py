"""Scenario 1's consumer as a Lambda mapped to a Kinesis stream: keeps REVISION_DETAILS records
of the BicycleLicence table and writes each revision to index `licence` with `_id = metadata.id`
and the revision's version as an external version; a revision without `data` is a delete with
that version. Records may arrive twice or out of order: version conflicts (409) are ignored.
The search endpoint comes from the function's environment (`ES_URL`)."""

import base64
import json
import os
import urllib.error
import urllib.request


def _request(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        os.environ["ES_URL"] + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def handler(event, context):
    for record in event["Records"]:
        payload = json.loads(base64.b64decode(record["kinesis"]["data"]))
        if payload.get("recordType") != "REVISION_DETAILS":
            continue
        if payload["payload"]["tableInfo"]["tableName"] != "BicycleLicence":
            continue
        revision = payload["payload"]["revision"]
        metadata = revision["metadata"]
        path = f"/licence/_doc/{metadata['id']}?version={metadata['version']}&version_type=external"
        if "data" in revision:
            document = dict(revision["data"])
            # Values read from Ion came out as strings: numbers are numbers again here.
            document["PenaltyPoints"] = int(document["PenaltyPoints"])
            status = _request("PUT", path, document)
        else:
            status = _request("DELETE", path)
        if status not in (200, 201, 404, 409):
            raise RuntimeError(f"indexing {metadata['id']} answered {status}")
    return {}
