"""Firehose transformation that returns every record unchanged and marks it Ok (scenario 2)."""


def handler(event, context):
    return {
        "records": [
            {"recordId": record["recordId"], "result": "Ok", "data": record["data"]}
            for record in event["records"]
        ]
    }
