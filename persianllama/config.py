"""Typed configuration: dataclasses are the one source of truth for every setting.

A recipe is a YAML file whose keys mirror a dataclass; ``key=value`` overrides (dotted for nested
fields, YAML-typed values) go on top. The docstring under each field is its help line, shown by
``--help`` and written into recipes (litgpt's convention)::

    @dataclass
    class TrainArgs:
        save_interval: int = 1000
        \"\"\"Optimizer steps between checkpoints\"\"\"
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import math
import re
import textwrap
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A recipe or override that does not fit the configuration; the message says which key and why."""


class RuleError(ConfigError):
    """A value of the right type that breaks its field's rule (a range, a regex)."""


# --- rules that sit next to a field ------------------------------------------------------------------
#
#     workers: Annotated[int, Range(1)] = 4          # or the aliases below: `workers: Count = 4`
#     """Worker processes."""
#
# `from_dict` checks them after type coercion (so recipes, flags and overrides all go through them),
# `describe` prints them after the type, and a dataclass's `__post_init__` holds the rules that tie two
# fields together (`check_order`).


@dataclasses.dataclass(frozen=True)
class Range:
    """A number rule: ``lo <= value <= hi`` (a side may be open, or absent). Floats must be finite anyway."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def text(self) -> str:
        lo = None if self.lo is None else ("> " if self.lo_open else ">= ") + _num(self.lo)
        hi = None if self.hi is None else ("< " if self.hi_open else "<= ") + _num(self.hi)
        if lo and hi:
            left, right = ("(" if self.lo_open else "["), (")" if self.hi_open else "]")
            return f"in {left}{_num(self.lo)}, {_num(self.hi)}{right}"
        return lo or hi or "any"

    def check(self, value: Any, key: str) -> None:
        if value is None:
            return
        bad = (self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo)) or (
            self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))
        if bad:
            raise RuleError(f"{key}={value!r} is out of range: it must be {self.text()}")


@dataclasses.dataclass(frozen=True)
class Regex:
    """A string rule: the value must compile as a Python regular expression."""

    def text(self) -> str:
        return "a regular expression"

    def check(self, value: Any, key: str) -> None:
        if value is None:
            return
        try:
            re.compile(value)
        except re.error as e:
            raise RuleError(f"{key}={value!r} is not a valid regular expression: {e}") from None


@dataclasses.dataclass(frozen=True)
class NonEmpty:
    """A string or list rule: at least one character / item."""

    def text(self) -> str:
        return "not empty"

    def check(self, value: Any, key: str) -> None:
        if value is not None and len(value) == 0:
            raise RuleError(f"{key} must not be empty")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(x)


Count = Annotated[int, Range(1)]
"""An integer >= 1 (a number of things, steps, workers...)."""
NonNegInt = Annotated[int, Range(0)]
"""An integer >= 0 (0 usually meaning "off" or "all"; the help line says which)."""
Fraction = Annotated[float, Range(0, 1)]
"""A finite float in [0, 1]."""
Positive = Annotated[float, Range(0, lo_open=True)]
"""A finite float > 0."""
NonNeg = Annotated[float, Range(0)]
"""A finite float >= 0."""
Pattern = Annotated[str, Regex()]
"""A string that compiles as a regular expression."""


def check_order(obj: Any, *names: str, strict: bool = False) -> None:
    """Refuse unless the named fields of `obj` that are set (not None) are in ascending order.

    For `__post_init__`: ``check_order(self, "min_words", "max_words")``."""
    values = [(n, getattr(obj, n)) for n in names if getattr(obj, n) is not None]
    for (a, x), (b, y) in zip(values, values[1:]):
        if x > y or (strict and x == y):
            op = "<" if strict else "<="
            raise RuleError(f"{a}={x!r} must be {op} {b}={y!r}")


def _rules(tp: Any) -> tuple[Any, list]:
    """(the plain type, its rules) of a possibly `Annotated` type."""
    if get_origin(tp) is Annotated:
        base, *meta = get_args(tp)
        return base, [m for m in meta if hasattr(m, "check")]
    return tp, []


@functools.cache
def field_docs(cls: type) -> dict[str, str]:
    """Help line of each field: the string literal right under the field in the class body."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _type_name(tp: Any) -> str:
    base, rules = _rules(tp)
    if rules:
        return f"{_type_name(base)} ({', '.join(r.text() for r in rules)})"
    origin = get_origin(tp)
    if origin is Literal:
        return "{" + ",".join(str(a) for a in get_args(tp)) + "}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        return f"list[{_type_name(inner)}]"
    if origin is dict:
        return "dict"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check `value` against the annotation `tp`, converting where the meaning is unambiguous."""
    base, rules = _rules(tp)
    if rules:
        value = _coerce(value, base, key)
        for rule in rules:
            rule.check(value, key)
        return value
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except RuleError:
                raise  # the right type, the wrong value: say so, not "is not a int | None"
            except ConfigError:
                pass
        raise ConfigError(f"{key}: {value!r} is not a {_type_name(tp)}")
    if origin is Literal:
        choices = get_args(tp)
        if value in choices:
            return value
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, choices))}")
    if origin is list:
        (inner,) = get_args(tp) or (Any,)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # `inputs=a.jsonl` means a list of one
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(float(value)) if value.replace(".", "", 1).isdigit() else int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        number = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(number):
            raise RuleError(f"{key}={value!r} is not a finite number")
        return number
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is Path:
        return Path(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build `cls` from a mapping; unknown keys are an error that lists the valid ones."""
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]!s} for {cls.__name__}; valid keys: {', '.join(sorted(names))}"
        )
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except RuleError as e:  # a __post_init__ rule naming its fields: put the section in front of them
        raise RuleError(f"{prefix}{e}") from None
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{prefix or cls.__name__}: {e}") from e


def to_dict(obj: Any) -> Any:
    """Plain-data view of a config (Paths as strings), suitable for YAML/JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["a.b=3", "c=x"]`` -> ``{"a": {"b": 3}, "c": "x"}``; values are read as YAML scalars/lists."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, raw = item.split("=", 1)
        key = key.strip().lstrip("-").replace("-", "_")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            if raw.lstrip()[:1] in ("[", "{"):  # `x=[a` must not become the string "[a"
                problem = getattr(e, "problem", None) or "not valid YAML"
                raise ConfigError(f"override {item!r}: {raw!r} is not a valid list or mapping ({problem}); "
                                  "write it as [a, b] with balanced brackets") from None
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with an earlier one")
        node[parts[-1]] = value
    return out


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge `extra` onto `base` (mappings merge, everything else replaces)."""
    out = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), list) and all(str(i).isdigit() for i in v):
            # `sources.0.hf_config=x`: a dotted index into a list of mappings.
            items = list(out[k])
            for i, sub in v.items():
                i = int(i)
                if i >= len(items):
                    raise ConfigError(f"{k}.{i}: there are only {len(items)} item(s) in {k}")
                items[i] = merge(items[i], sub) if isinstance(sub, dict) and isinstance(items[i], dict) else sub
            out[k] = items
        else:
            out[k] = v
    return out


def read_recipe(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"recipe not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"recipe {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"recipe {path} must be a mapping of settings, not {type(data).__name__}")
    return data


def load(cls: type[T], recipe: str | Path | None = None, overrides: list[str] | dict | None = None,
         **values: Any) -> T:
    """Defaults < recipe file < explicit `values` (CLI flags) < `key=value` overrides."""
    data: dict[str, Any] = read_recipe(recipe) if recipe else {}
    data = merge(data, {k: v for k, v in values.items() if v is not None})
    if overrides:
        data = merge(data, overrides if isinstance(overrides, dict) else parse_overrides(overrides))
    return from_dict(cls, data)


def describe(cls: type, prefix: str = "", indent: str = "  ") -> str:
    """One line per field (nested dataclasses flattened with dots): name, type, default, help."""
    lines = []
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            lines.append(describe(tp, prefix + f.name + ".", indent))
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            default = "(required)"
        lines.append(f"{indent}{prefix}{f.name}: {_type_name(tp)} = {default!r}")
        if f.name in docs:
            lines.append(f"{indent}    {docs[f.name]}")
    return "\n".join(lines)


def check_value(value: Any, tp: Any, key: str) -> Any:
    """One value (a command-line flag, say) checked and converted as a field of type `tp` named `key` would be:
    ``check_value(args.limit, Count, "--limit")``."""
    return _coerce(value, tp, key)


_OVERRIDE = re.compile(r"^[A-Za-z_][\w.]*=")


def flags_to_settings(flags: dict[str, Any]) -> dict[str, Any]:
    """Command-line flags as a settings mapping: ``{"model.base": x, "lora.r": None}`` -> ``{"model": {"base": x}}``.

    Unset flags (None) are dropped; values are taken literally (a path with spaces or colons stays a path,
    never parsed as YAML). The one flag-to-setting helper of every command built on these dataclasses."""
    out: dict[str, Any] = {}
    for key, value in flags.items():
        if value is None:
            continue
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def split_overrides(paths: list[str] | None, overrides: list[str]) -> tuple[list[str] | None, list[str]]:
    """`--corpus a b k=v`: argparse hands k=v to the nargs="+" flag; give setting overrides back to the
    overrides (unless a file of that name exists)."""
    import os

    if paths is None:
        return None, list(overrides)
    keep = [p for p in paths if not (_OVERRIDE.match(p) and not os.path.exists(p))]
    return keep, [p for p in paths if p not in keep] + list(overrides)
