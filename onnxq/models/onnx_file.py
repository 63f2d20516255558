"""Is this file an ONNX model? Decided from its bytes, never from its name.

A model file reaches onnxq from a user (register) and from the disk (every load). Anything else that
might sit in its place, above all a pickle (which runs arbitrary code when loaded), must be refused
before any library interprets it. ONNX files are protobuf `ModelProto` messages; this module walks
the protobuf wire format of the top-level message without the `onnx` package (the gateway and worker
do not install it) and requires what every ONNX model has: `ir_version` (field 1, a varint), a
`graph` (field 7, length-delimited) and at least one `opset_import` (field 8, length-delimited).
"""

from __future__ import annotations

from onnxq.errors import InvalidModel

# ModelProto fields and the wire type each must have (0 varint, 2 length-delimited).
IR_VERSION, GRAPH, OPSET_IMPORT = 1, 7, 8
_KNOWN_WIRE_TYPES = {
    1: 0,  # ir_version
    2: 2,  # producer_name
    3: 2,  # producer_version
    4: 2,  # domain
    5: 0,  # model_version
    6: 2,  # doc_string
    7: 2,  # graph
    8: 2,  # opset_import
    14: 2,  # metadata_props
    20: 2,  # training_info
    25: 2,  # functions
    26: 2,  # configuration
}
# Highest ONNX IR version known today is 12; leave room for a few more without accepting noise.
MAX_IR_VERSION = 64

# Magic bytes of formats that are never a model here, named in the error for the user's sake.
_KNOWN_IMPOSTORS = (
    (b"\x80", "a Python pickle"),
    (b"PK\x03\x04", "a zip archive (a PyTorch .pt/.pth checkpoint or a joblib/npz file)"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"\x89HDF", "an HDF5 file (Keras)"),
)


def _varint(data: bytes | memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _fields(data: bytes | memoryview) -> dict[int, list[int]]:
    """Field numbers -> varint values (wire type 0) or payload lengths (wire type 2)."""
    seen: dict[int, list[int]] = {}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ValueError("field number 0")
        expected = _KNOWN_WIRE_TYPES.get(number)
        if expected is not None and wire_type != expected:
            raise ValueError(f"field {number} has wire type {wire_type}, not {expected}")
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 1:
            value, position = 0, position + 8
        elif wire_type == 2:
            value, position = _varint(data, position)
            position += value
        elif wire_type == 5:
            value, position = 0, position + 4
        else:  # 3 and 4 (groups) are not used by ONNX; 6 and 7 do not exist
            raise ValueError(f"wire type {wire_type}")
        if position > len(data):
            raise ValueError(f"field {number} runs past the end of the file")
        seen.setdefault(number, []).append(value)
    return seen


def check_onnx_bytes(data: bytes, what: str = "the file") -> None:
    """Raise InvalidModel unless `data` is a well-formed ONNX ModelProto at the top level."""
    for magic, kind in _KNOWN_IMPOSTORS:
        if data.startswith(magic):
            raise InvalidModel(f"{what} is {kind}, not an ONNX model; onnxq loads ONNX only")
    try:
        fields = _fields(memoryview(data))
    except ValueError as exc:
        reason = f"not a protobuf ModelProto: {exc}"
        raise InvalidModel(f"{what} is not an ONNX model ({reason})") from None
    ir_version = fields.get(IR_VERSION, [0])[0]
    missing = [
        label
        for label, present in (
            ("ir_version", 1 <= ir_version <= MAX_IR_VERSION),
            ("graph", GRAPH in fields),
            ("opset_import", OPSET_IMPORT in fields),
        )
        if not present
    ]
    if missing:
        raise InvalidModel(f"{what} is not an ONNX model (no valid {', '.join(missing)})")
