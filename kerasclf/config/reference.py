"""docs/config.md, generated from the schema: every key's type, default, allowed values and help.

`kerasclf config-reference > docs/config.md` rewrites it; tests/test_config_reference.py
fails when a key has no help text or the file is out of date.
"""

import dataclasses
import typing

import kerasclf.registry as registries
from kerasclf.config.coerce import type_name
from kerasclf.config.constraints import OneOf, Range, Registered
from kerasclf.config.schema import OPEN_SECTIONS, Config
from kerasclf.registry import DATASETS

HEADER = """# Config reference

Generated from the schema (kerasclf/config/schema.py) by `kerasclf config-reference > docs/config.md`;
do not edit by hand. A config file is YAML with the sections below; every key may be left out
(its default applies) and set from the command line with `--set section.key=value`.
"""


def _text(value):
    if value is None:
        return "null"
    if value is True or value is False:
        return str(value).lower()
    return str(value)


def allowed(check) -> str:
    """What a key's constraint allows, in words ('' for a rule only its help text explains)."""
    if isinstance(check, Range):
        return check.describe()
    if isinstance(check, OneOf):
        return ", ".join(_text(v) for v in check.values)
    if isinstance(check, Registered):  # names only by command: plugins add to them
        registry = getattr(registries, check.registry)
        also = "".join(f"{v}, or " for v in check.also)
        return f"{also}a registered {registry.kind} (`kerasclf {registry.list_command}`)"
    return ""


def missing_help(cls=Config, prefix="") -> list[str]:
    """Keys (section.key) without a help text."""
    out = []
    for f in dataclasses.fields(cls):
        if not f.metadata.get("help"):
            out.append(prefix + f.name)
        if dataclasses.is_dataclass(f.type):
            out.extend(missing_help(f.type, f"{prefix}{f.name}."))
    return out


def _default(f):
    if f.default_factory is not dataclasses.MISSING:
        made = f.default_factory()
        return "" if dataclasses.is_dataclass(made) else _text(made)
    return _text(f.default)


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(cls, prefix):
    hints = typing.get_type_hints(cls)
    rows = ["| key | type | default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    nested = []
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.type):
            nested.append(f)
            continue
        if OPEN_SECTIONS.get(cls) == f.name:
            continue  # described in the section's text
        rows.append("| " + " | ".join(_cell(x) for x in (
            f"`{prefix}{f.name}`", type_name(hints[f.name]), f"`{_default(f)}`" if _default(f) else "",
            allowed(f.metadata.get("check")), f.metadata.get("help", ""),
        )) + " |")
    return rows, nested


def _section(cls, name, help_text, level=2):
    lines = [f"{'#' * level} `{name}`", "", help_text[0].upper() + help_text[1:] + "."]
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        lines += ["", " ".join(cls.__doc__.split())]
    open_field = OPEN_SECTIONS.get(cls)
    if open_field:
        f = next(f for f in dataclasses.fields(cls) if f.name == open_field)
        lines += ["", f"Also: {f.metadata['help']}."]
    rows, nested = _table(cls, f"{name}.")
    lines += ["", *rows]
    for f in nested:
        lines += ["", *_section(f.type, f"{name}.{f.name}", f.metadata["help"], level + 1)]
    return lines


def _data_set_options():
    rows = ["| data set | key | type | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for entry in DATASETS.entries():
        if entry.factory.__module__ not in DATASETS.builtin_modules:
            continue  # a plugin's: not part of the package's reference
        for key, (default, help_text) in entry.meta.get("options", {}).items():
            rows.append(f"| {entry.name} | `data.{key}` | {type(default).__name__} | `{_text(default)}` | {_cell(help_text)} |")
    return rows if len(rows) > 2 else []


def config_reference() -> str:
    """The whole of docs/config.md."""
    lines = [HEADER, "## Top level", "", *_table(Config, "")[0]]
    for f in dataclasses.fields(Config):
        if dataclasses.is_dataclass(f.type):
            lines += ["", *_section(f.type, f.name, f.metadata["help"])]
    options = _data_set_options()
    if options:
        lines += ["", "## Data set options", "", "Keys a data set declares (registry meta `options`), "
                  "written in the `data` section; another data set refuses them.", "", *options]
    return "\n".join(lines) + "\n"
