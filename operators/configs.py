"""The configuration models of the built-in operators, in one light module (pydantic only).

The operator modules use them to validate a node's configuration at start-up, and the
descriptor checker can import this module (never the operator modules, which pull numpy)
to report bad configuration at check time with :func:`check_config`. Each model is the
single source of truth for its operator's keys; :func:`schemas` exports JSON Schemas.

Validators that involve several keys raise ``ValueError("key: message")``: the key becomes
the error's location.
"""

from __future__ import annotations

import string
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from zflow.errors import clip


class Config(BaseModel):
    """Base of built-in operator configurations: unknown keys ignored, values validated.

    Unknown keys are legitimate: a node's configuration is merged with the flow-level one.
    """

    # nan and inf are refused like any bad number (an infinite timer period would wait forever)
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class TimerConfig(Config):
    period_ms: float = Field(1000.0, gt=0)
    count: int | None = Field(None, ge=0)
    payload: Literal["time", "tick", "both"] = "time"


class ReplayConfig(Config):
    path: str
    speed: float = Field(0.0, ge=0)
    time_column: str | list[str] | None = None
    time_format: str | None = None
    batch: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=0)
    columns: list[str] | None = None

    @model_validator(mode="after")
    def _speed_needs_time(self) -> ReplayConfig:
        if self.speed > 0 and not self.time_column:
            raise ValueError(f"time_column: speed {self.speed:g} needs a time_column to follow "
                             "(or speed: 0 to replay as fast as possible)")
        return self


class CsvConfig(ReplayConfig):
    delimiter: str = Field(",", min_length=1, max_length=1)
    skip_rows: int = Field(0, ge=0)
    header_row: int | None = Field(0, ge=0)
    types: dict[str, Literal["int", "float", "str"]] = {}
    infer_rows: int = Field(1000, ge=1)


class JsonlConfig(ReplayConfig):
    on_error: Literal["fail", "skip"] = "fail"


class JsonlSinkConfig(Config):
    path: str
    mode: Literal["w", "a"] = "w"
    flush_every: int = Field(1, ge=0)
    fsync: bool = False
    explode: bool = True
    port_field: str | None = None


class PrintConfig(Config):
    format: str | None = None
    every: int = Field(1, ge=1)
    limit: int | None = Field(None, ge=0)

    @field_validator("format")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                list(string.Formatter().parse(value))
            except ValueError as exc:
                raise ValueError(f"bad format string: {exc} (use str.format fields such as "
                                 "'{moteid}: {temperature:.1f}')") from None
        return value


class SensorSimConfig(Config):
    motes: int = Field(54, ge=1, le=100_000)
    epochs: int | None = Field(None, ge=0)
    period_s: float = Field(31.0, gt=0)
    speed: float = Field(0.0, ge=0)
    seed: int = 0
    fault_rate: float = Field(0.002, ge=0, le=1)
    gap_rate: float = Field(0.05, ge=0, le=1)
    event_rate: float = Field(0.0, ge=0, le=1)
    battery_epochs: float = Field(100_000, gt=0)
    weak_batteries: int = Field(0, ge=0)
    start: str = "2004-02-28T00:58:46"
    start_epoch: int = Field(1, ge=0)
    batch: bool = False

    @field_validator("start")
    @classmethod
    def _iso(cls, value: str) -> str:
        datetime.fromisoformat(value)  # ValueError -> a validation error naming the key
        return value


Aggregate = Literal["count", "mean", "min", "max", "sum", "std", "first", "last"]


_DEFAULT_AGGREGATES: tuple[Aggregate, ...] = ("mean", "min", "max")


class WindowConfig(Config):
    fields: list[str] = Field(min_length=1)
    aggregates: list[Aggregate] = Field(default_factory=lambda: list(_DEFAULT_AGGREGATES), min_length=1)
    by: Literal["count", "time"] = "count"
    size: float = Field(gt=0)
    slide: float | None = Field(None, gt=0)
    key: str | list[str] | None = None
    time_field: str | None = None
    time_format: str | None = None
    lateness: float = Field(0.0, ge=0)
    partial: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> WindowConfig:
        if self.by == "time" and not self.time_field:
            raise ValueError("time_field: time windows need a time_field (the event time of a record)")
        if self.slide is not None and self.slide > self.size:
            raise ValueError(f"slide: slide {self.slide:g} is larger than size {self.size:g}: "
                             "rows between windows would be lost")
        if self.by == "count":
            for name in ("size", "slide"):
                value = getattr(self, name)
                if value is not None and value != int(value):
                    raise ValueError(f"{name}: {name} must be a whole number of rows for count windows")
        return self


class Rule(Config):
    min: float | None = None
    max: float | None = None
    zscore: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _something(self) -> Rule:
        if self.min is None and self.max is None and self.zscore is None:
            raise ValueError("a rule needs at least one of min, max, zscore")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class ThresholdConfig(Config):
    fields: dict[str, Rule] = Field(min_length=1)
    key: str | list[str] | None = None
    halflife: float | None = Field(None, gt=0)
    min_count: int = Field(10, ge=2)
    min_std: float = Field(1e-9, ge=0)
    learn_anomalies: bool = False
    pass_clean: bool = True
    pass_all: bool = False


class SubscribeConfig(Config):
    keys: dict[str, str] = Field(min_length=1)
    queue_size: int = Field(1024, ge=1)
    policy: Literal["block", "drop_oldest"] = "block"


class PublishConfig(Config):
    keys: dict[str, str] = Field(min_length=1)


# Built-in name -> model. The Zenoh bridges are left out: the compiler fills in their keys.
CONFIGS: dict[str, type[Config]] = {
    "timer": TimerConfig,
    "csv-replay": CsvConfig,
    "jsonl-replay": JsonlConfig,
    "jsonl-sink": JsonlSinkConfig,
    "print": PrintConfig,
    "sensor-sim": SensorSimConfig,
    "window": WindowConfig,
    "threshold": ThresholdConfig,
}

Loc = tuple[str | int, ...]


def errors(model: type[Config], config: dict[str, Any]) -> tuple[Config | None, list[tuple[Loc, str]]]:
    """The validated model, or every problem as (location inside the configuration, message)."""
    try:
        return model.model_validate(config), []
    except ValidationError as exc:
        return None, [_located(err) for err in exc.errors()]


def check_config(name: str, config: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Problems with a built-in's (merged) configuration; [] when fine or not a checked built-in."""
    model = CONFIGS.get(name)
    return [] if model is None else errors(model, config)[1]


def schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of each built-in's configuration, by built-in name."""
    return {name: model.model_json_schema() for name, model in CONFIGS.items()}


def _located(err: Any) -> tuple[Loc, str]:
    loc: Loc = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
    kind = err.get("type")
    msg = str(err.get("msg", "invalid value"))
    if kind == "missing":
        return loc, "required configuration key is missing"
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
        key, sep, rest = msg.partition(": ")
        if sep and not loc and key.isidentifier():
            return (key,), rest
        return loc, msg
    msg = msg[0].lower() + msg[1:] if msg else msg
    return loc, f"{msg} (got {clip(err['input'])})" if "input" in err else msg
