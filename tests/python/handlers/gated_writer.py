"""Waits until the file `GATE_FILE` names exists, then appends the event's `n` to the file
`SEEN_FILE` names, durably: lets a test hold Event invocations queued while it kills the
server."""

import os
import time


def handler(event, context):
    deadline = time.monotonic() + 120
    while not os.path.exists(os.environ["GATE_FILE"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    with open(os.environ["SEEN_FILE"], "a") as seen:
        seen.write(f'{event["n"]}\n')
        seen.flush()
        os.fsync(seen.fileno())
    return {}
