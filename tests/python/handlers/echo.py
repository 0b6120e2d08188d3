"""Answers the event it was given, under `echo`; raises when the event asks for it."""


class PaymentDeclined(Exception):
    pass


def handler(event, context):
    if isinstance(event, dict) and event.get("fail"):
        raise PaymentDeclined("card declined")
    print("echo handler saw", event)
    return {"echo": event}
