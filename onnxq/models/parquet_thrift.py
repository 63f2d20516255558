"""Thrift's compact protocol, as Parquet stores its footer and page headers: read into dicts of
field id -> value, and written from them (the result files onnxq writes).

Only what Parquet's metadata uses: booleans, integers (zigzag varints), doubles, binaries
(names), lists and structs. Unions are structs with one field set.
"""

from __future__ import annotations

import struct
from typing import Any

BOOL_TRUE, BOOL_FALSE, BYTE, I16, I32, I64, DOUBLE, BINARY, LIST, SET, MAP, STRUCT = range(1, 13)


class ThriftError(ValueError):
    """Metadata that is not thrift's compact protocol (a cut or corrupt file)."""


class Reader:
    def __init__(self, data: bytes | memoryview, at: int = 0):
        self.data, self.at = data, at

    def _byte(self) -> int:
        if self.at >= len(self.data):
            raise ThriftError("the metadata ends early")
        value = self.data[self.at]
        self.at += 1
        return value

    def varint(self) -> int:
        shift = result = 0
        while True:
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ThriftError("a varint runs on")

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def struct(self) -> dict[int, Any]:
        fields: dict[int, Any] = {}
        last = 0
        while True:
            head = self._byte()
            if head == 0:  # stop
                return fields
            kind, delta = head & 0x0F, head >> 4
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind)

    def value(self, kind: int) -> Any:
        if kind in (BOOL_TRUE, BOOL_FALSE):  # in a struct the type says it; in a list, a byte
            return kind == BOOL_TRUE
        if kind == BYTE:
            byte = self._byte()
            return byte - 256 if byte > 127 else byte
        if kind in (I16, I32, I64):
            return self.zigzag()
        if kind == DOUBLE:
            end = self.at + 8
            if end > len(self.data):
                raise ThriftError("the metadata ends early")
            (number,) = struct.unpack_from("<d", self.data, self.at)
            self.at = end
            return number
        if kind == BINARY:
            size = self.varint()
            end = self.at + size
            if end > len(self.data):
                raise ThriftError("the metadata ends early")
            raw = bytes(self.data[self.at : end])
            self.at = end
            return raw
        if kind in (LIST, SET):
            head = self._byte()
            size, element = head >> 4, head & 0x0F
            if size == 15:
                size = self.varint()
            if element in (BOOL_TRUE, BOOL_FALSE):
                return [self._byte() == 1 for _ in range(size)]
            return [self.value(element) for _ in range(size)]
        if kind == STRUCT:
            return self.struct()
        if kind == MAP:
            size = self.varint()
            if not size:
                return {}
            types = self._byte()
            return {self.value(types >> 4): self.value(types & 0x0F) for _ in range(size)}
        raise ThriftError(f"an unknown thrift type {kind}")


def read_struct(data: bytes | memoryview, at: int = 0) -> tuple[dict[int, Any], int]:
    """The struct at `at`, and where it ends."""
    reader = Reader(data, at)
    return reader.struct(), reader.at


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(value: int) -> bytes:
    return _varint((value << 1) ^ (value >> 63))


def write_struct(fields: list[tuple[int, int, Any]]) -> bytes:
    """A struct of (field id, thrift type, value) in field id order; a struct value is such a
    list, a list value is (element type, values)."""
    out, last = bytearray(), 0
    for field, kind, value in fields:
        if kind == BOOL_TRUE:
            kind = BOOL_TRUE if value else BOOL_FALSE
        delta = field - last
        out += bytes([(delta << 4) | kind]) if 0 < delta <= 15 else bytes([kind]) + _zigzag(field)
        last = field
        out += _value(kind, value)
    out.append(0)
    return bytes(out)


def _value(kind: int, value: Any) -> bytes:
    if kind in (BOOL_TRUE, BOOL_FALSE):
        return b""
    if kind in (I16, I32, I64):
        return _zigzag(value)
    if kind == BYTE:
        return bytes([value & 0xFF])
    if kind == BINARY:
        raw = value.encode() if isinstance(value, str) else value
        return _varint(len(raw)) + raw
    if kind == STRUCT:
        return write_struct(value)
    if kind == LIST:
        element, values = value
        head = bytes([(len(values) << 4) | element]) if len(values) < 15 else (
            bytes([0xF0 | element]) + _varint(len(values)))  # fmt: skip
        return head + b"".join(_value(element, v) for v in values)
    raise ThriftError(f"onnxq does not write thrift type {kind}")
