"""Reading a file a user named, bounded in size and never blocking.

A path on the command line can be anything: a FIFO (whose open waits for a writer forever),
/dev/zero (endless), a 5 GB log. Only regular files are read, opened without blocking, and a
file over the cap is refused before it is read into memory.
"""

from __future__ import annotations

import os
import stat

# The files the probe reads: a resolv.conf is a few lines, a CA bundle a few hundred KiB.
MAX_RESOLV_CONF, MAX_CA_FILE = 64 * 1024, 4 * 1024 * 1024


class FileRefused(OSError):
    """Not a regular file, or over the size cap; the message says which."""


def read_bounded(path: str | os.PathLike[str], cap: int) -> bytes:
    """The file's bytes; OSError (FileRefused for what is no regular file or over `cap` bytes)."""
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileRefused(f"not a regular file ({_kind(mode)})")
        data = b""
        while len(data) <= cap:  # one byte more than the cap tells a file over it
            chunk = os.read(fd, cap + 1 - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) > cap:
        raise FileRefused(f"larger than {cap // 1024} KiB")
    return data


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "a special file"
