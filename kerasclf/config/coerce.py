"""YAML / `--set` values -> the annotated types of the schema (kerasclf.config.schema)."""

import dataclasses
import math
import types
import typing
from typing import Any, Union

from kerasclf.config.reader import parse_yaml_value
from kerasclf.config.schema import OPEN_SECTIONS
from kerasclf.errors import ConfigError, did_you_mean


def type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    return {type(None): "null"}.get(tp, getattr(tp, "__name__", str(tp)))


class _NotFinite(ConfigError):
    """A number that is inf or nan: refused even where another type of a union would take the value."""


def _is_null(value):
    return value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~"))


def coerce(value, tp, where: str):
    """Coerce a YAML/--set value to the annotated type, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _coerce_union(value, tp, where)
    if origin is list:
        return _coerce_list(value, tp, where)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    if tp not in _SCALARS:
        raise TypeError(f"unsupported config type {tp} at {where}")
    return _SCALARS[tp](value, where)


def _coerce_union(value, tp, where):
    args = typing.get_args(tp)
    if _is_null(value) and type(None) in args:
        return None
    if (
        isinstance(value, str) and str in args and any(typing.get_origin(a) is list for a in args)
        and "," not in value and not value.lstrip().startswith("[")
    ):
        # list-or-str fields (data.classes): one plain word stays a string, so that
        # "first:3" keeps its meaning instead of becoming the one-name list ["first:3"].
        return value
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(value, arg, where)
        except _NotFinite:
            raise
        except ConfigError:
            continue
    raise ConfigError(f"{where} must be {type_name(tp)}, got {value!r}.")


def _coerce_list(value, tp, where):
    (item,) = typing.get_args(tp)
    if isinstance(value, str):
        value = parse_yaml_value(value, where) if value.startswith("[") else value.split(",")
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where} must be {type_name(tp)}, got {value!r}.")
    return [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]


def _to_bool(value, where):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return value.lower() in ("true", "yes", "1", "on")
    raise ConfigError(f"{where} must be true or false, got {value!r}.")


def _to_int(value, where):
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ConfigError(f"{where} must be int, got {value!r}.")


def _to_float(value, where):
    number = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if number is None:
        raise ConfigError(f"{where} must be float, got {value!r}.")
    if not math.isfinite(number):
        raise _NotFinite(f"{where} must be a finite number, got {value!r}.")
    return number


def _to_str(value, where):
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{where} must be str, got {value!r}.")


def _to_dict(value, where):
    if isinstance(value, dict):
        return value
    raise ConfigError(f"{where} must be a mapping, got {value!r}.")


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str, dict: _to_dict}


def build(cls, raw, where: str):
    """A section dataclass from its raw mapping: known keys coerced, unknown keys refused (or
    collected into the open field of an open section)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'the config'} must be a mapping of keys to values, got {raw!r}.")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    open_field = OPEN_SECTIONS.get(cls)
    values, extra = {}, {}
    for name, value in raw.items():
        if name in hints and name != open_field:
            values[name] = coerce(value, hints[name], f"{where}.{name}" if where else name)
        elif open_field:
            extra[name] = value
        else:
            section = f"section '{where}'" if where else "the top level"
            raise ConfigError(
                f"Unknown config key '{name}' in {section}.{did_you_mean(name, names)} "
                f"Valid keys there: {', '.join(names)}."
            )
    if open_field:
        values[open_field] = extra
    return cls(**values)
