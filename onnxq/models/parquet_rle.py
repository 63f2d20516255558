"""Parquet's RLE / bit-packed hybrid encoding (definition levels, dictionary indexes, booleans),
decoded with numpy: a page's run headers read in Python, the bit-packed values of all of a
column's pages unpacked together, a value position at a time."""

from __future__ import annotations

from typing import Any

import numpy as np


class RunsError(ValueError):
    """Bytes that are not whole runs of the hybrid encoding (a cut or corrupt page)."""


def rle_values(data: Any, width: int, count: int) -> np.ndarray:
    """`count` values of the RLE/bit-packed hybrid encoding, `width` bits each."""
    return rle_pages([(data, count)], width)


def rle_pages(pages: list[tuple[Any, int]], width: int) -> np.ndarray:
    """The values of several pages' RLE/bit-packed runs (data, count), one after another.

    A first pass reads the runs' headers; the bit-packed runs (each a whole number of bytes)
    are then unpacked together, with numpy, and put in their places."""
    out = np.empty(sum(count for _, count in pages), np.uint32)
    value_bytes = (width + 7) // 8
    packed: list[Any] = []
    places: list[tuple[int, int, int]] = []  # (first row, rows, first packed value)
    packed_values = filled = 0
    for data, count in pages:
        filled, packed_values = _runs(data, width, count, value_bytes, out, filled, packed,
                                      places, packed_values)  # fmt: skip
    if places:
        values = _unpacked(b"".join(packed), width, packed_values)
        for first, n, start in places:
            out[first : first + n] = values[start : start + n]
    return out


def _runs(
    data: Any, width: int, count: int, value_bytes: int, out: np.ndarray, filled: int,
    packed: list[Any], places: list[tuple[int, int, int]], packed_values: int,
) -> tuple[int, int]:  # fmt: skip
    """Read one page's run headers from `filled` on: repeated values written to `out`,
    bit-packed bytes gathered in `packed` with their `places`."""
    at, size, end = 0, len(data), filled + count
    while filled < end:
        run_at = at
        shift = header = 0
        while True:  # the run's header: a varint
            if at >= size:
                raise RunsError("levels or indexes end early")
            byte = data[at]
            at += 1
            header |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        if header & 1:  # bit-packed: groups of 8 values
            groups = header >> 1
            if at + groups * width > size:
                raise RunsError("levels or indexes end early")
            # Writers cut long bit-packed stretches into runs of one length (pyarrow: 504
            # values): those that follow with the same header are taken at once.
            body, run_bytes = groups * width, at - run_at + groups * width
            most = (end - filled) // (groups * 8) if body else 0  # 0 bits: no bytes to take
            runs = _same_runs(data, run_at, at - run_at, body, most)
            taken = len(runs) // body if runs is not None else 1
            packed.append(runs if runs is not None else data[at : at + body])
            at, groups = run_at + taken * run_bytes, groups * taken
            n = min(groups * 8, end - filled)
            first, done, start = places[-1] if places else (0, -1, 0)
            if first + done == filled and start + done == packed_values:
                places[-1] = (first, done + n, start)  # the last run goes on: one copy
            else:
                places.append((filled, n, packed_values))
            packed_values += groups * 8
        else:  # a run of one value
            if at + value_bytes > size:
                raise RunsError("levels or indexes end early")
            n = min(header >> 1, end - filled)
            out[filled : filled + n] = int.from_bytes(bytes(data[at : at + value_bytes]), "little")
            at += value_bytes
        filled += n
        if not n:
            raise RunsError("an empty run in levels or indexes")
    return filled, packed_values


def _same_runs(data: Any, at: int, head: int, body: int, most: int) -> np.ndarray | None:
    """The bodies, joined, of the bit-packed runs from `at` on that have the header (`head`
    bytes) and body length of the first, up to `most` of them; None unless there are two or more."""
    most = min(most, (len(data) - at) // (head + body))
    if most < 2:
        return None
    runs = np.frombuffer(data, np.uint8, most * (head + body), at).reshape(most, head + body)
    same = (runs[:, :head] == runs[0, :head]).all(axis=1)
    count = most if same.all() else int(np.argmin(same))
    if count < 2:
        return None
    return np.ascontiguousarray(runs[:count, head:]).reshape(-1)


def _unpacked(stream: bytes, width: int, count: int) -> np.ndarray:
    """Bit-packed values, `width` bits each, LSB first: 8 values to each `width` bytes."""
    if not width:  # a one-entry dictionary's indexes: no bytes for their `count` values
        return np.zeros(count, np.uint32)
    if width > 32:
        raise RunsError(f"levels or indexes of {width} bits")
    groups = len(stream) // width
    padded = np.frombuffer(stream + bytes(8), np.uint8)
    out = np.empty((8, groups), np.uint32)  # the j-th values of the groups, then transposed
    mask = np.uint64((1 << width) - 1)
    for j in range(8):  # the j-th value of every group: 8 bytes read from the same offset in each
        first, shift = divmod(j * width, 8)  # shift + width <= 39: one (unaligned) 64-bit word
        words = np.ndarray((groups,), "<u8", padded, first, (width,))
        out[j] = (words >> np.uint64(shift)) & mask
    return out.T.reshape(-1)
