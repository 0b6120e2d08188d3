"""Times 4 KiB appends made durable two ways, alternating, on the disk of the directory given
(default: the current one): a page-cache write and an fdatasync, against one O_DIRECT | O_DSYNC
write. The tables' write-ahead log (crates/tables/src/wal.rs) uses the second. Prints p50, p90,
mean and CPU (user + system) per append.

    python3 crates/bench/probes/direct-append.py [DIR]
"""

import mmap
import os
import resource
import sys
import time

APPENDS = 4000
FILE_BYTES = 64 << 20

directory = sys.argv[1] if len(sys.argv) > 1 else "."
path = os.path.join(directory, "direct-append.probe")
# Preallocated and written once, as the log is, so no append changes the file's size.
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
os.write(fd, b"\0" * FILE_BYTES)
os.fsync(fd)
os.close(fd)
block = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT needs
block.write(b"x" * 4096)


def run(name, flags, fdatasync):
    fd = os.open(path, os.O_RDWR | flags)
    times = []
    before = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(APPENDS):
        started = time.perf_counter()
        os.pwrite(fd, block, (i * 4096) % (FILE_BYTES - 4096))
        if fdatasync:
            os.fdatasync(fd)
        times.append(time.perf_counter() - started)
    after = resource.getrusage(resource.RUSAGE_SELF)
    os.close(fd)
    times.sort()
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(
        f"{name:22s} p50 {times[APPENDS // 2] * 1e6:4.0f} µs  p90 {times[APPENDS * 9 // 10] * 1e6:4.0f} µs"
        f"  mean {sum(times) / APPENDS * 1e6:4.0f} µs  CPU {cpu / APPENDS * 1e6:4.0f} µs"
    )


try:
    for _ in range(3):
        run("write + fdatasync", 0, True)
        run("O_DIRECT | O_DSYNC", os.O_DIRECT | os.O_DSYNC, False)
finally:
    os.unlink(path)
