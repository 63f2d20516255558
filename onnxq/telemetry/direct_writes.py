"""Large appends to a prediction log segment, written past the page cache (O_DIRECT).

A file job's batch is 100 MB and more that nobody reads soon (the drift check reads the log once a
week). Written through the page cache, the kernel must first find that much free memory for it,
and on a machine whose free memory is handed back to its host (this VM; ballooned cloud VMs) that
costs ~0.4 s for a million-row job's 136 MB, most of the job's logging; written direct, ~0.08 s,
and the page cache keeps what is read. The bytes and their order are the same either way: the
segment's format does not know.

O_DIRECT wants offsets, lengths and buffer addresses in whole blocks: the bytes up to the next
ALIGN boundary of the file go through the ordinary descriptor, then whole blocks from an aligned
bounce buffer through the direct one, then the last part block through the ordinary one again.
A file system without O_DIRECT (tmpfs), or one refusing the alignment, gets every byte through
the ordinary descriptor.
"""

from __future__ import annotations

import errno
import mmap
import os

ALIGN = 4096  # a multiple of any device's logical block size
BOUNCE_BYTES = 8 * 1024 * 1024  # the aligned buffer whole blocks are copied through
DIRECT_MIN_BYTES = 8 * 1024 * 1024  # smaller appends stay in the page cache
WRITEV_MOST = 1024  # buffers in one writev (Linux's IOV_MAX)
# What a file system that cannot write this direct answers (nothing written).
REFUSED = {errno.EINVAL, errno.EOPNOTSUPP}


def write_all(fd: int, views: list[memoryview]) -> None:
    """Write the buffers in order, gathered (writev), looping over short writes."""
    views = [view for view in views if view.nbytes]
    while views:
        written = os.writev(fd, views[:WRITEV_MOST])
        while views and written >= views[0].nbytes:
            written -= views.pop(0).nbytes
        if written:  # a short write, part way into a buffer: the rest of it goes next
            views[0] = views[0][written:]


def open_direct(path: os.PathLike[str] | str) -> int | None:
    """A second, O_DIRECT descriptor appending to `path`; None where the file system has none."""
    try:
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_DIRECT | os.O_CLOEXEC)
    except OSError:
        return None


class DirectAppender:
    """Appends through a direct descriptor with one bounce buffer (made at first use, kept)."""

    def __init__(self) -> None:
        self._bounce: mmap.mmap | None = None

    def append(self, fd: int, direct_fd: int, size: int, views: list[memoryview]) -> bool:
        """Append `views` to the file of `fd` and `direct_fd`, which is `size` bytes long.
        False when the direct descriptor refused its first write (EINVAL: the bytes all went
        through `fd`, and it should not be tried again); an OSError otherwise."""
        if self._bounce is None:
            # Anonymous, so page-aligned; private, so a forked child's writes are its own.
            self._bounce = mmap.mmap(-1, BOUNCE_BYTES, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        bounce = memoryview(self._bounce)
        head, rest = _split(views, -size % ALIGN)
        write_all(fd, head)  # to the file's next block boundary
        filled = 0
        for index, piece in enumerate(rest):
            while piece.nbytes:
                room = min(BOUNCE_BYTES - filled, piece.nbytes)
                bounce[filled : filled + room] = piece[:room]
                filled, piece = filled + room, piece[room:]
                if filled == BOUNCE_BYTES:
                    if not _write_direct(fd, direct_fd, bounce, filled):
                        write_all(fd, [piece, *rest[index + 1 :]])
                        return False
                    filled = 0
        whole = filled - filled % ALIGN
        direct = _write_direct(fd, direct_fd, bounce, whole) if whole else True
        write_all(fd, [bounce[whole:filled]])
        return direct


def _write_direct(fd: int, direct_fd: int, block: memoryview, length: int) -> bool:
    """Write `length` bytes (whole blocks) of `block` direct; when refused (nothing written),
    through `fd` instead, and False."""
    done = 0
    while done < length:
        try:
            done += os.write(direct_fd, block[done:length])
        except OSError as exc:
            if exc.errno not in REFUSED or done:
                raise
            write_all(fd, [block[:length]])
            return False
        if done % ALIGN:  # a short write off a block boundary: the rest cannot go direct
            write_all(fd, [block[done:length]])
            return True
    return True


def _split(views: list[memoryview], count: int) -> tuple[list[memoryview], list[memoryview]]:
    """The first `count` bytes of `views`, and the rest (a view cut in two where they meet)."""
    head: list[memoryview] = []
    for index, view in enumerate(views):
        if count <= 0:
            return head, views[index:]
        head.append(view[:count])
        if view.nbytes > count:
            return head, [view[count:], *views[index + 1 :]]
        count -= view.nbytes
    return head, []
