"""Times fdatasync'd appends with a pause before each, on the disk of the directory given
(default: the current one): how long a durable append takes when the disk was idle for a while,
as a commit over the network finds it (each transaction's round trips leave the disk idle
between fsyncs), against appends back to back, as the benchmarks' disk rows measure them.

Each append writes 600 bytes (a one-document ledger block's frame) into a preallocated,
zero-filled file, as the ledger's journal does, and `fdatasync`s it. The pause is a sleep
(the thread blocks, as a server's thread waiting for the next request does). Every pause is
measured twice, in two alternating rounds; prints p50 and p90 per pause and round.

    python3 crates/bench/probes/fsync-gap.py [DIR]
"""

import os
import sys
import time

PAUSES_MICROS = [0, 50, 100, 200, 300, 500, 1000, 2000]
SECONDS_PER_PAUSE = 1.5
FILE_BYTES = 64 << 20
FRAME = b"x" * 600

directory = sys.argv[1] if len(sys.argv) > 1 else "."
path = os.path.join(directory, "fsync-gap.probe")
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
chunk = b"\0" * (1 << 20)
for offset in range(0, FILE_BYTES, len(chunk)):
    os.pwrite(fd, chunk, offset)
os.fsync(fd)


def run(pause_micros, offset):
    """Appends for SECONDS_PER_PAUSE; answers the latencies in microseconds and the offset."""
    latencies = []
    pause = pause_micros / 1e6
    end = time.monotonic() + SECONDS_PER_PAUSE
    while time.monotonic() < end:
        if pause:
            time.sleep(pause)
        started = time.perf_counter_ns()
        os.pwrite(fd, FRAME, offset)
        os.fdatasync(fd)
        latencies.append((time.perf_counter_ns() - started) // 1000)
        offset = (offset + len(FRAME)) % (FILE_BYTES - 4096)
    return sorted(latencies), offset


try:
    offset = 0
    print("| pause before each append | round | appends | p50 | p90 |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for round_no in (1, 2):
        for pause in PAUSES_MICROS:
            latencies, offset = run(pause, offset)
            n = len(latencies)
            print(
                f"| {pause} µs | {round_no} | {n} | {latencies[n // 2]} µs "
                f"| {latencies[n * 9 // 10]} µs |",
                flush=True,
            )
finally:
    os.close(fd)
    os.unlink(path)
