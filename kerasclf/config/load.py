"""Config files and `--set a.b=c` overrides -> a validated Config, and back to YAML."""

import dataclasses
from typing import Iterable

from kerasclf.config.checks import validate
from kerasclf.config.coerce import build
from kerasclf.config.plugins import import_plugins
from kerasclf.config.reader import parse_yaml_value, read_yaml_mapping, write_yaml
from kerasclf.config.schema import OPEN_SECTIONS, Config
from kerasclf.errors import ConfigError


def from_dict(raw: dict) -> Config:
    """A raw mapping (as YAML gives it) -> a checked Config; the config's plugins are imported first."""
    if isinstance(raw, dict):
        import_plugins(raw.get("plugins") or [])
    cfg = build(Config, raw, "")
    validate(cfg)
    return cfg


def to_dict(cfg: Config) -> dict:
    """Plain dict with the open sections flattened back, as a user would write it."""
    out = dataclasses.asdict(cfg)
    for cls, open_field in OPEN_SECTIONS.items():
        for section in dataclasses.fields(Config):
            if section.type is cls or section.default_factory is cls:
                out[section.name].update(out[section.name].pop(open_field))
    return out


def parse_override(text: str) -> tuple[list[str], object]:
    """'a.b=c' -> (['a', 'b'], parsed c). Values are parsed as YAML scalars."""
    if "=" not in text:
        raise ConfigError(f"--set expects KEY=VALUE (for example train.epochs=5), got {text!r}.")
    key, value = text.split("=", 1)
    path = key.strip().split(".")
    if not all(part.strip() for part in path):
        raise ConfigError(
            f"--set {text!r}: the key before '=' must be section.key with no empty part "
            "(for example train.epochs=5)."
        )
    parsed = parse_yaml_value(value, f"--set {text!r}") if value.strip() else ""
    return [p.strip() for p in path], parsed


def apply_overrides(raw: dict, overrides: Iterable[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text}: '{part}' is not a section.")
            node = child
        node[path[-1]] = value
    return raw


def read_config_file(path) -> dict:
    """A config file's raw mapping (the one YAML reader's checks: UTF-8, no duplicate keys, not empty)."""
    return read_yaml_mapping(path, "Config file", "configs/<dataset>/<name>.yaml")


def load_config(path=None, overrides: Iterable[str] = ()) -> Config:
    raw: dict = read_config_file(path) if path is not None else {}
    return from_dict(apply_overrides(raw, overrides))


def dump_config(cfg: Config, path) -> None:
    write_yaml(to_dict(cfg), path)
