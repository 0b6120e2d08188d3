"""Firehose transformation that rewrites every message to `bye world! <uuid>` (scenario 2)."""

import base64
import json
import uuid


def handler(event, context):
    records = []
    for record in event["records"]:
        document = json.loads(base64.b64decode(record["data"]))
        document["message"] = f"bye world! {uuid.uuid4()}"
        data = base64.b64encode(json.dumps(document).encode()).decode()
        records.append({"recordId": record["recordId"], "result": "Ok", "data": data})
    return {"records": records}
