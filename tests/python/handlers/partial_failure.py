"""A stream consumer that reports its poison records: each record's data is a JSON object;
`{"poison": true}` fails. Records processed before the first failure are appended to the file
`SEEN_FILE` names (one data line each), which is what "delivered" means in the test; the first
failure and everything after it is reported in `batchItemFailures`."""

import base64
import json
import os


def handler(event, context):
    failures = []
    with open(os.environ["SEEN_FILE"], "a") as seen:
        for record in event["Records"]:
            data = base64.b64decode(record["kinesis"]["data"]).decode()
            if failures or json.loads(data).get("poison"):
                failures.append({"itemIdentifier": record["kinesis"]["sequenceNumber"]})
                continue
            seen.write(data + "\n")
            seen.flush()
            os.fsync(seen.fileno())
    return {"batchItemFailures": failures}
