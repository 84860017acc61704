"""The one YAML reader of configs, study files and run directories' config.yaml.

Stricter than yaml.safe_load where a silent choice would be wrong: a key written twice in
one mapping is refused (naming the key and both lines), so is an empty or non-UTF-8 file
and a file that is not a mapping.
"""

from pathlib import Path

import yaml

from kerasclf.errors import ConfigError, first_line


class DuplicateKey(yaml.YAMLError):
    """A mapping that writes one key twice (its message names the key and both lines)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys instead of keeping the last one."""

    def construct_mapping(self, node, deep=False):
        lines = {}
        for key_node, _ in node.value:  # the mapping's own keys: one merged with << may be overridden
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            name = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = lines.get(name)
            except TypeError:  # an unhashable key: SafeLoader's own error says so below
                break
            if first is not None:
                raise DuplicateKey(f"the key {name!r} is written twice in one mapping (lines {first} and {line}); keep one.")
            lines[name] = line
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str):
    """YAML text -> Python objects, with duplicate keys refused (yaml.YAMLError)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 -- a SafeLoader subclass


def parse_yaml_value(text: str, where: str):
    """One YAML value from `--set` or a list written inline; ConfigError when it is not YAML."""
    try:
        return parse_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: the value is not valid YAML ({first_line(exc)}); quote it.") from None


def read_yaml_mapping(path, what: str = "Config file", where: str = "configs/<dataset>/<name>.yaml") -> dict:
    """A YAML file that must hold a non-empty mapping: its dict, or one ConfigError that says why not.

    `what` names the file in messages ("Config file", "Study file"); `where` says where such files live.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist. {what}s live in {where}.")
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{what} {str(path)!r} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"position {exc.start}); save it as UTF-8 (most editors: 'Save with encoding')."
        ) from None
    except DuplicateKey as exc:
        raise ConfigError(f"{what} {str(path)!r}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {exc}") from None
    if raw is None:
        raise ConfigError(f"{what} {str(path)!r} is empty; write its sections (see {where}).")
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {str(path)!r} must hold a mapping of sections, got {type(raw).__name__}.")
    return raw


def write_yaml(data, path) -> None:
    Path(path).write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
