"""Ryax action metadata (``ryax_metadata.yaml``, apiVersion ``ryax.tech/v2.0``) as pydantic models.

The models follow Ryax's own v2 schema (unknown fields are errors, ids 3-24 characters of
lowercase alphanumerics, '-' and '.'), so an action directory written for Ryax validates here
unchanged. :func:`load_action` adds the checks a schema cannot make: the handler file that
the kind requires, the logo file, default values that match their type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from zflow.documents import Document, load_document, validate
from zflow.errors import Problem, UserError, clip, did_you_mean
from zflow.workflows.entrypoints import check_handler

API_VERSION = "ryax.tech/v2.0"
METADATA_FILE = "ryax_metadata.yaml"
HANDLER_FILE = "ryax_handler.py"
TRIGGER_FILE = "ryax_run.py"
HANDLER_FILES = {"python3": HANDLER_FILE, "python3-cuda": HANDLER_FILE, "nodejs": "ryax_handler.js",
                 "csharp-dotnet6": "ryax_handler.cs"}

MEMORY_UNITS: dict[str, float] = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
TIME_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "ms": 0.001}
MIN_MEMORY = 32 * 1024**2  # Ryax refuses less: the action runtime needs it to start


class IOType(StrEnum):
    STRING = "string"
    LONGSTRING = "longstring"
    PASSWORD = "password"
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    ENUM = "enum"
    FILE = "file"
    DIRECTORY = "directory"
    TABLE = "table"
    BYTES = "bytes"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _with_unit(value: str | float, units: dict[str, float], what: str, example: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be like {example} or a plain number")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    pattern = "|".join(sorted(units, key=len, reverse=True))
    m = re.fullmatch(rf"(\d+(?:\.\d+)?)\s*({pattern})", text)
    if not m:
        raise ValueError(f"{what} {text!r} must be a number followed by one of {', '.join(units)} (e.g. {example})")
    return float(m.group(1)) * units[m.group(2)]


def parse_memory(value: str | int) -> int:
    """``512M`` -> bytes (K/M/G/T are powers of 1024, a bare number is bytes)."""
    return int(_with_unit(value, MEMORY_UNITS, "memory", "512M"))


def parse_duration(value: str | float) -> float:
    """``10m`` -> seconds (units s/m/h/d, and ms; a bare number is seconds)."""
    return _with_unit(value, TIME_UNITS, "time", "10m")


def text_version(v: Any) -> Any:
    """YAML reads ``version: 1.0`` as a float: ask for quotes instead of guessing."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        raise ValueError(f'version must be a string: quote it ("{v}")')
    return v


class Resources(_Strict):
    """What an action asks for by default; the scheduler reads the parsed values."""

    cpu: float | None = Field(None, ge=0.1, description="cores, fractions allowed (0.5)")
    memory: str | int | None = Field(None, description="bytes, or a size with unit K, M, G or T")
    time: str | float | None = Field(None, description="seconds, or a duration with unit s, m, h or d")
    gpu: int | None = Field(None, ge=1)

    @field_validator("memory")
    @classmethod
    def _memory(cls, v: str | int | None) -> str | int | None:
        if v is not None and parse_memory(v) < MIN_MEMORY:
            raise ValueError(f"memory must be at least 32M (the action runtime needs it), got {v}")
        return v

    @field_validator("time")
    @classmethod
    def _time(cls, v: str | float | None) -> str | float | None:
        if v is not None and parse_duration(v) <= 0:
            raise ValueError("time must be positive")
        return v

    @property
    def memory_bytes(self) -> int | None:
        return parse_memory(self.memory) if self.memory is not None else None

    @property
    def time_seconds(self) -> float | None:
        return parse_duration(self.time) if self.time is not None else None

    def to_hints(self) -> dict[str, Any]:
        """Resources in plain units for the scheduler's deploy hints."""
        out: dict[str, Any] = {}
        if self.cpu is not None:
            out["cpu"] = self.cpu
        if self.memory is not None:
            out["memory"] = self.memory_bytes
        if self.time is not None:
            out["time"] = self.time_seconds
        if self.gpu is not None:
            out["gpu"] = self.gpu
        return out


class ActionIO(_Strict):
    """One input or output of an action."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                      description="the key in the handler's dict (letters, digits, '_')")
    human_name: str = Field(max_length=128)
    help: str = Field(max_length=10_000)
    type: IOType
    enum_values: list[str] | None = Field(None, max_length=64)
    default_value: str | int | float | bool | None = None
    optional: bool = False

    @model_validator(mode="after")
    def _enum(self) -> ActionIO:
        if self.type is IOType.ENUM and not self.enum_values:
            raise ValueError("an enum needs enum_values (the list of accepted values)")
        if self.type is not IOType.ENUM and self.enum_values is not None:
            raise ValueError(f"enum_values is only for type enum (this IO has type {self.type.value})")
        if self.default_value is not None:
            try:
                coerce_static(self, self.default_value)
            except ValueError as exc:
                raise ValueError(f"default_value: {exc}") from None
        return self

    @property
    def required(self) -> bool:
        return not self.optional and self.default_value is None


class DynamicOutput(ActionIO):
    """An output a workflow defines for a trigger whose action has ``dynamic_outputs: true``."""

    human_name: str = Field("", max_length=128)
    help: str = Field("", max_length=10_000)


class PythonOptions(_Strict):
    version: str = Field(pattern=r"^3\.\d{1,2}$", description="major.minor, e.g. 3.11")


class NixpkgsOptions(_Strict):
    version: str = Field(min_length=1)


class Options(BaseModel):
    """Build options; Ryax accepts any key here, the known ones are checked."""

    model_config = ConfigDict(extra="allow")
    python: PythonOptions | None = None
    nixpkgs: NixpkgsOptions | None = None


class ActionSpec(_Strict):
    id: str = Field(min_length=3, max_length=24, pattern=r"^[a-z0-9][a-z0-9.\-]*$",
                    description="3-24 characters: lowercase letters, digits, '-' and '.'")
    human_name: str = Field(min_length=3, max_length=128)
    type: Literal["python3", "python3-cuda", "nodejs", "csharp-dotnet6"]
    version: str = Field("1.0", min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-_]*$")
    description: str | None = None
    logo: str | None = None
    dependencies: list[str] = Field(default_factory=list, max_length=64)
    options: Options | None = None
    addons: dict[str, Any] | None = None
    categories: list[str] = Field(default_factory=list, max_length=32)
    resources: Resources | None = None
    inputs: list[ActionIO] = Field(default_factory=list)
    outputs: list[ActionIO] = Field(default_factory=list, max_length=64)
    dynamic_outputs: bool = False

    _version_is_text = field_validator("version", mode="before")(text_version)

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: list[str]) -> list[str]:
        for c in v:
            if not 1 <= len(c) <= 32:
                raise ValueError(f"category {c!r} must be 1-32 characters")
        return v


class ActionMetadata(_Strict):
    """The whole ``ryax_metadata.yaml``."""

    apiVersion: Literal["ryax.tech/v2.0"]
    kind: Literal["Processor", "Publisher", "Source", "Trigger"]
    spec: ActionSpec

    @field_validator("kind")
    @classmethod
    def _trigger_alias(cls, v: str) -> str:
        return "Source" if v == "Trigger" else v

    @model_validator(mode="after")
    def _kind_rules(self) -> ActionMetadata:
        if self.spec.dynamic_outputs and self.kind != "Source":
            raise ValueError("dynamic_outputs is only allowed for Source (trigger) actions")
        return self


def coerce_static(io: ActionIO, value: Any) -> Any:
    """Check a static value (from YAML or a default) against an IO type; ints widen to float."""
    t = io.type
    if value is None:
        if io.optional:
            return None
        raise ValueError("a value is required (the IO is not optional)")
    if t in (IOType.STRING, IOType.LONGSTRING, IOType.PASSWORD):
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string for type {t.value}, got {type(value).__name__} {clip(value)}")
    if t is IOType.INTEGER:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"expected an integer, got {type(value).__name__} {clip(value)}")
    if t is IOType.FLOAT:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"expected a number, got {type(value).__name__} {clip(value)}")
    if t is IOType.BOOLEAN:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {clip(value)}")
    if t is IOType.ENUM:
        if isinstance(value, str) and value in (io.enum_values or []):
            return value
        hint = did_you_mean(str(value), io.enum_values or [])
        raise ValueError(f"{clip(value)} is not one of {io.enum_values}" + (f" ({hint})" if hint else ""))
    if t in (IOType.FILE, IOType.DIRECTORY):
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a path for type {t.value}, got {clip(value)}")
    if t is IOType.TABLE:
        if isinstance(value, list) and all(isinstance(r, dict) for r in value):
            return value
        if isinstance(value, dict) and all(isinstance(c, list) for c in value.values()):
            return value
        raise ValueError("expected a table: a list of rows (mappings) or a mapping of columns (lists)")
    if t is IOType.BYTES:
        if isinstance(value, bytes | str):
            return value.encode() if isinstance(value, str) else value
        raise ValueError(f"expected bytes, got {type(value).__name__}")
    raise ValueError(f"unknown type {t}")  # pragma: no cover


@dataclass(frozen=True)
class Action:
    """A validated action directory."""

    directory: Path
    metadata: ActionMetadata
    file: str

    @property
    def spec(self) -> ActionSpec:
        return self.metadata.spec

    @property
    def id(self) -> str:
        return self.metadata.spec.id

    @property
    def version(self) -> str:
        return self.metadata.spec.version

    @property
    def kind(self) -> str:
        return self.metadata.kind

    @property
    def is_trigger(self) -> bool:
        return self.metadata.kind == "Source"

    @property
    def handler_file(self) -> Path:
        if self.spec.type in ("python3", "python3-cuda"):
            return self.directory / (TRIGGER_FILE if self.is_trigger else HANDLER_FILE)
        return self.directory / HANDLER_FILES[self.spec.type]

    def with_dynamic_outputs(self, outputs: list[ActionIO]) -> Action:
        """This action with the outputs a workflow defined for it (triggers with dynamic_outputs)."""
        if not outputs:
            return self
        spec = self.spec.model_copy(update={"outputs": [*self.spec.outputs, *outputs]})
        return Action(self.directory, self.metadata.model_copy(update={"spec": spec}), self.file)

    def input(self, name: str) -> ActionIO | None:
        return next((i for i in self.spec.inputs if i.name == name), None)

    def output(self, name: str) -> ActionIO | None:
        return next((o for o in self.spec.outputs if o.name == name), None)


def _semantic_problems(meta: ActionMetadata, doc: Document, directory: Path) -> list[Problem]:
    problems: list[Problem] = []
    for section in ("inputs", "outputs"):
        seen: dict[str, int] = {}
        for i, io in enumerate(getattr(meta.spec, section)):
            if io.name in seen:
                problems.append(doc.problem(("spec", section, i, "name"),
                                            f"duplicate {section[:-1]} name {io.name!r} "
                                            f"(first at {section}[{seen[io.name]}])"))
            seen.setdefault(io.name, i)
    for i, io in enumerate(meta.spec.outputs):
        if io.default_value is not None:
            problems.append(doc.problem(("spec", "outputs", i, "default_value"),
                                        "default_value is only for inputs"))
    if meta.kind == "Publisher" and meta.spec.outputs:
        problems.append(doc.problem(("spec", "outputs"), "a Publisher ends a workflow: it has no outputs",
                                    "use kind: Processor to pass values on"))
    if meta.kind == "Source" and meta.spec.type not in ("python3", "python3-cuda"):
        problems.append(doc.problem(("spec", "type"), "triggers (Source) are only supported in python3"))
    handler = (directory / (TRIGGER_FILE if meta.kind == "Source" else HANDLER_FILE)
               if meta.spec.type in ("python3", "python3-cuda") else directory / HANDLER_FILES[meta.spec.type])
    if not handler.is_file():
        other = directory / (HANDLER_FILE if handler.name == TRIGGER_FILE else TRIGGER_FILE)
        hint = None
        if other.is_file():
            hint = (f"found {other.name}: a {meta.kind} uses {handler.name}"
                    + (" (kind: Source is for ryax_run.py)" if other.name == TRIGGER_FILE else ""))
        problems.append(doc.problem(("kind",), f"{handler.name} is missing in {directory}", hint))
    elif meta.spec.type in ("python3", "python3-cuda"):
        problems += check_handler(handler, trigger=meta.kind == "Source")
    if meta.spec.logo and not (directory / meta.spec.logo).is_file():
        problems.append(doc.problem(("spec", "logo"), f"logo file {meta.spec.logo!r} not found in {directory}"))
    return problems


def load_action(directory: str | Path) -> Action:
    """Load and check an action directory; every problem at once, each with file and line."""
    d = Path(directory)
    if not d.is_dir():
        raise UserError(Problem("action directory not found", file=str(directory)))
    meta_file = d / METADATA_FILE
    if not meta_file.is_file():
        hint = None
        alt = [p.name for p in d.iterdir() if p.suffix in (".yaml", ".yml")]
        if alt:
            hint = did_you_mean(METADATA_FILE, alt) or f"found {', '.join(sorted(alt))}"
        raise UserError(Problem(f"{METADATA_FILE} is missing", file=str(d), hint=hint))
    doc = load_document(meta_file)
    meta = validate(ActionMetadata, doc)
    problems = _semantic_problems(meta, doc, d)
    if problems:
        raise UserError(problems)
    return Action(directory=d.resolve(), metadata=meta, file=str(meta_file))
