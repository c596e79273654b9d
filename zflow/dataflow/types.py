"""Port types: parsing the type names a descriptor may use, and what may flow into what.

Grammar: ``any`` (default) | ``bytes`` | ``json`` | ``str`` | ``int`` | ``float`` | ``bool`` |
``ndarray`` | ``ndarray[<numpy dtype>]`` | ``model:pkg.module:Class`` (a pydantic model).
Zenoh-Flow's Rust-ish names (``usize``, ``f64``, ``String``...) are read as their Python kin.
"""

from __future__ import annotations

import re

from zflow.errors import did_you_mean

SIMPLE = ("any", "bytes", "json", "str", "int", "float", "bool", "ndarray")
DTYPES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)
_ALIASES = {
    **{t: "int" for t in ("usize", "isize", "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "integer")},
    **{t: "float" for t in ("f32", "f64", "double", "number")},
    "String": "str", "string": "str", "boolean": "bool", "Vec<u8>": "bytes", "object": "json",
}
_NDARRAY = re.compile(r"^ndarray\[\s*([A-Za-z0-9_]+)\s*\]$")
_MODEL = re.compile(r"^model:([A-Za-z_][\w.]*):([A-Za-z_]\w*)$")
# What a value of the key type may be received as, besides itself and ``any``.
_WIDENS = {"int": {"float", "json"}, "float": {"json"}, "str": {"json"}, "bool": {"json", "int"}}


def normalize(name: str | None) -> tuple[str | None, str | None, str | None]:
    """``(canonical type, None, None)`` or ``(None, error, hint)``. A canonical ``None`` means any."""
    if name is None:
        return None, None, None
    text: str = str(name).strip()
    text = _ALIASES.get(text) or text
    if text in SIMPLE:
        return (None if text == "any" else text), None, None
    m = _NDARRAY.match(text)
    if m:
        dtype = m.group(1)
        if dtype not in DTYPES:
            hint = did_you_mean(dtype, DTYPES) or "a numpy dtype such as float32"
            return None, f"unknown ndarray dtype '{dtype}'", hint
        return f"ndarray[{dtype}]", None, None
    if text.startswith("model:"):
        if _MODEL.match(text):
            return text, None, None
        return None, f"bad model type {text!r}", "expected model:pkg.module:Class"
    close = did_you_mean(text, [*SIMPLE, "ndarray[float32]"])
    expected = "any, bytes, json, str, int, float, bool, ndarray, ndarray[float32], model:pkg.mod:Class"
    return None, f"unknown port type '{text}'", close or "expected one of " + expected


def compatible(src: str | None, dst: str | None) -> bool:
    """Can a value declared ``src`` be delivered to an input declared ``dst``?"""
    if src is None or dst is None or src == dst:
        return True
    if dst == "ndarray" and src.startswith("ndarray["):
        return True
    return dst in _WIDENS.get(src, ())


__all__ = ["compatible", "normalize"]
