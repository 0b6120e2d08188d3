"""A Firehose transformation that answers each record with the environment variables a
handler is documented to get (and some it must not get), to test what Sluice passes on."""

import base64
import json
import os

NAMES = [
    "PATH", "HOME", "VIRTUAL_ENV", "LC_TIME", "TZ", "GREETING",
    "SLUICE_TEST_SECRET", "AWS_SECRET_ACCESS_KEY", "AWS_REGION",
    "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT",
]


def handler(event, context):
    environment = {name: os.environ.get(name) for name in NAMES}
    data = base64.b64encode(json.dumps({"environment": environment}).encode()).decode()
    return {"records": [{"recordId": r["recordId"], "result": "Ok", "data": data} for r in event["records"]]}
