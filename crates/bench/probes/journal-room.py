"""fsync'd appends after a pause, into room prepared three ways, and the device reads they cost.

A journal is grown ahead of its frames by writing zeros, so that an append's fdatasync flushes
data only. This times 600-byte appends, each `fdatasync`ed after a 200 us pause (as a commit over
the network finds the disk), into a 16 MiB file whose zeros were written:

  buffered   through the page cache (what the ledger's journal does), so the room stays cached;
  direct     with O_DIRECT, so the room is on disk but not in the page cache;
  populated  with O_DIRECT, then read back through the page cache.

For each it prints the appends' p50, p90 and mean, and the bytes the appends read from the device
(`read_bytes` of /proc/self/io): an append into a page that is not cached reads it first.

    python3 crates/bench/probes/journal-room.py DIR [ROUNDS]

DIR must be on the disk under test (not tmpfs, which refuses O_DIRECT).
"""

import mmap
import os
import sys
import time

ROOM_BYTES = 16 << 20
CHUNK_BYTES = 1 << 20
APPENDS = 2000
APPEND_BYTES = 600
PAUSE_SECONDS = 200e-6


def device_read_bytes():
    with open("/proc/self/io") as counters:
        for line in counters:
            name, value = line.split(": ")
            if name == "read_bytes":
                return int(value)
    return 0


def prepare(path, mode):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    os.posix_fallocate(fd, 0, ROOM_BYTES)
    if mode == "buffered":
        zeros = bytes(CHUNK_BYTES)
        for offset in range(0, ROOM_BYTES, CHUNK_BYTES):
            os.pwrite(fd, zeros, offset)
    else:
        direct = os.open(path, os.O_WRONLY | os.O_DIRECT)
        aligned_zeros = mmap.mmap(-1, CHUNK_BYTES)
        for offset in range(0, ROOM_BYTES, CHUNK_BYTES):
            os.pwritev(direct, [aligned_zeros], offset)
        os.close(direct)
        if mode == "populated":
            for offset in range(0, ROOM_BYTES, CHUNK_BYTES):
                os.pread(fd, CHUNK_BYTES, offset)
    os.fdatasync(fd)
    return fd


def appends(fd):
    record = os.urandom(APPEND_BYTES)
    micros = []
    read_before = device_read_bytes()
    for n in range(APPENDS):
        time.sleep(PAUSE_SECONDS)
        started = time.perf_counter()
        os.pwrite(fd, record, n * APPEND_BYTES)
        os.fdatasync(fd)
        micros.append((time.perf_counter() - started) * 1e6)
    micros.sort()
    return (
        micros[len(micros) // 2],
        micros[int(len(micros) * 0.9)],
        sum(micros) / len(micros),
        device_read_bytes() - read_before,
    )


def main():
    directory = sys.argv[1]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    modes = ("buffered", "direct", "populated")
    for _ in range(rounds):
        for mode in modes:
            path = os.path.join(directory, f"journal-room-{mode}")
            fd = prepare(path, mode)
            p50, p90, mean, read = appends(fd)
            os.close(fd)
            os.unlink(path)
            print(
                f"{mode:9} p50 {p50:5.0f} us  p90 {p90:5.0f} us  mean {mean:5.0f} us"
                f"  read from the device {read // 1024} KiB",
                flush=True,
            )


if __name__ == "__main__":
    main()
