"""The one codec: msgpack with a zero-copy numpy extension; raw bytes pass through untouched.

The content kind travels in the Zenoh encoding, so a receiver knows whether a payload is
raw bytes (``application/octet-stream``) or msgpack (``application/msgpack``) without
guessing; a JSON payload from a plain Zenoh tool is decoded too.
"""

from __future__ import annotations

import json
from typing import Any

import msgpack

NDARRAY_EXT = 1
MSGPACK = "application/msgpack"
OCTET = "application/octet-stream"
JSON = "application/json"
TEXT = "text/plain"


def _default(obj: Any) -> Any:
    # numpy is imported only when a numpy value shows up (daemons on small devices stay lean).
    if type(obj).__module__ != "numpy":
        return _default_other(obj)
    import numpy as np

    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        if arr.dtype.hasobject:
            raise TypeError("numpy arrays of Python objects cannot be encoded")
        header = msgpack.packb((arr.dtype.str, arr.shape))
        return msgpack.ExtType(NDARRAY_EXT, len(header).to_bytes(4, "little") + header + arr.tobytes())
    if isinstance(obj, np.generic):
        return obj.item()
    return _default_other(obj)


def _default_other(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):  # pydantic models travel as their dict form
        return obj.model_dump(mode="python")
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == NDARRAY_EXT:
        import numpy as np

        view = memoryview(data)
        hlen = int.from_bytes(view[:4], "little")
        dtype, shape = msgpack.unpackb(view[4 : 4 + hlen], use_list=False)
        return np.frombuffer(view, dtype=np.dtype(dtype), offset=4 + hlen).reshape(shape)
    return msgpack.ExtType(code, data)


_packer_default = _default


def encode(value: Any) -> tuple[bytes, str]:
    """Encode a value; returns the payload and its content type."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value) if not isinstance(value, bytes) else value, OCTET
    return msgpack.packb(value, default=_packer_default, use_bin_type=True), MSGPACK


def decode(payload: bytes | memoryview, content_type: str | None) -> Any:
    """Decode a payload by its content type; unknown types arrive as bytes."""
    if content_type is None or content_type.startswith(OCTET) or content_type == "zenoh/bytes":
        return payload if isinstance(payload, bytes) else bytes(payload)
    if content_type.startswith(MSGPACK):
        return msgpack.unpackb(payload, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    if content_type.startswith(JSON):
        return json.loads(bytes(payload))
    if content_type.startswith("text/") or content_type == "zenoh/string":
        return bytes(payload).decode("utf-8")
    return payload if isinstance(payload, bytes) else bytes(payload)
