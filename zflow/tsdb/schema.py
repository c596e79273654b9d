"""Dataset schema: ordered fixed-width columns, a time column, coding parameters.

Every column has a fixed width so that value (row, column) has a computable address inside a
sealed object (see :mod:`zflow.tsdb.layout.object_layout`). Decimal readings are stored as scaled integers
(``scale: 2`` turns 23.45 into 2345 in an ``i16``); queries and results speak the logical
(unscaled) values. The schema is a pydantic model loaded through :mod:`zflow.documents`, so a
bad schema is reported with file, line and did-you-mean like every other zflow document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zflow.documents import Document, load_document, parse_text, validate
from zflow.errors import Problem, UserError, did_you_mean

ColumnType = Literal["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64"]

DTYPES: dict[str, np.dtype] = {
    t: np.dtype({"u": "uint", "i": "int", "f": "float"}[t[0]] + t[1:])
    for t in ("u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64", "f32", "f64")
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Column(_Strict):
    """One column. ``scale`` (integer types only) makes the logical value ``stored / 10**scale``;
    ``codes`` maps text labels (e.g. TMY3 source flags) to the stored integers."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: ColumnType
    scale: int | None = Field(default=None, ge=0, le=18)
    dedup: bool = True
    codes: dict[str, int] | None = None
    source: str | list[str] | None = Field(
        default=None,
        description="input column name if different; [date, time] combines two columns into epoch seconds",
    )

    @model_validator(mode="after")
    def _scale_on_ints(self) -> Column:
        if self.scale is not None and self.type.startswith("f"):
            raise ValueError(
                f"scale applies to integer types (floats are stored as scaled integers); "
                f"use e.g. type 'i32' with scale {self.scale} instead of '{self.type}'"
            )
        return self

    @property
    def dtype(self) -> np.dtype:
        """Storage dtype."""
        return DTYPES[self.type]

    @property
    def bits(self) -> int:
        return self.dtype.itemsize * 8

    @property
    def logical_dtype(self) -> np.dtype:
        """Dtype of query results: scaled columns come back as float64."""
        return np.dtype("float64") if self.scale else self.dtype


class Coding(_Strict):
    """Erasure coding: k data fragments, n-k coded fragments, coefficients from ``seed``."""

    k: int = Field(default=4, ge=1, le=128)
    n: int = Field(default=6, ge=1, le=255)
    seed: int = 1

    @model_validator(mode="after")
    def _n_ge_k(self) -> Coding:
        if self.n < self.k:
            raise ValueError(f"n ({self.n}) must be at least k ({self.k})")
        return self


class Schema(_Strict):
    """A dataset's schema (the JSON file a person writes or ``zflow tsdb infer`` emits)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]+$")
    columns: list[Column] = Field(min_length=1)
    time_column: str | None = None
    coding: Coding = Coding()
    target_object_bytes: int = Field(default=4 << 20, ge=256)
    seal_seconds: float | None = Field(default=None, gt=0, description="seal a partial object after this long")
    chunk_size: int = Field(default=4096, ge=64, description="checksum chunk size inside fragments")

    @field_validator("columns")
    @classmethod
    def _unique(cls, cols: list[Column]) -> list[Column]:
        seen: set[str] = set()
        for c in cols:
            if c.name in seen:
                raise ValueError(f"column '{c.name}' is declared twice")
            seen.add(c.name)
        return cols

    @model_validator(mode="after")
    def _time_column_exists(self) -> Schema:
        if self.time_column is not None and self.time_column not in self.names:
            hint = did_you_mean(self.time_column, self.names)
            raise ValueError(
                f"time_column '{self.time_column}' is not a column" + (f" ({hint})" if hint else "")
            )
        return self

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise UserError(Problem(f"unknown column '{name}'", hint=did_you_mean(name, self.names)))

    @property
    def row_bytes(self) -> int:
        return sum(c.dtype.itemsize for c in self.columns)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude_none=True)


def load_schema(path: str | Path) -> Schema:
    """Load and validate a schema file (JSON or YAML)."""
    return validate(Schema, load_document(path))


def parse_schema(text: str, file: str | None = None) -> Schema:
    return validate(Schema, parse_text(text, file=file))


def schema_from_document(doc: Document) -> Schema:
    return validate(Schema, doc)
