"""Scenario 4's function, in the shape of the seed's Node.js handler: reads `event.Records`,
takes `dynamodb.NewImage` of INSERT records and indexes each into `transactions` through the
Elasticsearch API (`ES_URL` in the function's environment, or read from the file `ES_URL_FILE`
names), `_id` from the item's keys."""

import json
import os
import urllib.request


def _es_url():
    if "ES_URL" in os.environ:
        return os.environ["ES_URL"]
    with open(os.environ["ES_URL_FILE"]) as file:
        return file.read().strip()


def handler(event, context):
    for record in event["Records"]:
        if record["eventName"] != "INSERT":
            continue
        image = record["dynamodb"]["NewImage"]
        document = {
            "accountId": image["accountId"]["S"],
            "shortDescription": image["shortDescription"]["S"],
            "amount": float(image["amount"]["N"]),
            "userId": int(image["userId"]["N"]),
            "transactionId": int(image["transactionId"]["N"]),
        }
        doc_id = f"{document['userId']}-{document['transactionId']}"
        request = urllib.request.Request(
            f"{_es_url()}/transactions/_doc/{doc_id}",
            data=json.dumps(document).encode(),
            method="PUT",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request) as response:
            response.read()
    return {"indexed": True}
