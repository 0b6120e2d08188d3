"""Firehose transformation of scenario 3: adds a UTC ISO-8601 `timestamp` to each stock record
and re-encodes it with a trailing newline."""

import base64
import datetime
import json


def handler(event, context):
    records = []
    for record in event["records"]:
        document = json.loads(base64.b64decode(record["data"]))
        document["timestamp"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        data = (json.dumps(document) + "\n").encode()
        records.append({"recordId": record["recordId"], "result": "Ok", "data": base64.b64encode(data).decode()})
    return {"records": records}
