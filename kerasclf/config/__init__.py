"""Experiment config: YAML -> typed, validated dataclasses, with `--set a.b=c` overrides.

    schema       the sections and keys: type, range or choices, help text
    constraints  the vocabulary of checks (Range, OneOf, Registered) and `key()`
    coerce       YAML / --set values -> the annotated types
    reader       the one YAML reader (configs, study files, run directories)
    checks       the one validation pass: each key, then the rules over several keys
    plugins      `plugins:` imports, before names are checked
    trainable    the freeze-policy spec (full | head | last:N | from:<layer>)
    load         load_config / from_dict / to_dict / dump_config / --set overrides

`load_config` checks everything once: an unknown key names its section and the closest
valid key, a wrong type names the expected one, a value out of range says what it must be.
The `model` section also takes the keyword arguments of the chosen model builder, checked
against the builder's signature; the `data` section the options its data set declares.

Why dataclasses and not pydantic: the checks are a few declarative constraint objects per
field and the messages stay one paragraph with "did you mean"; pydantic would add a
dependency whose error texts must be rewritten into that form anyway.
"""

from kerasclf.config.checks import (
    CROSS_CHECKS,
    data_set_options,
    data_task,
    label_format,
    validate,
    without_retired_keys,
)
from kerasclf.config.constraints import FOLDER_PREFIX, OneOf, Range, Registered, key
from kerasclf.config.load import (
    apply_overrides,
    dump_config,
    from_dict,
    load_config,
    parse_override,
    read_config_file,
    to_dict,
)
from kerasclf.config.plugins import import_plugins
from kerasclf.config.reader import parse_yaml, read_yaml_mapping, write_yaml
from kerasclf.config.schema import (
    MONITORS,
    AugmentConfig,
    Config,
    DataConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    SamplerConfig,
    TrainConfig,
)
from kerasclf.config.trainable import TRAINABLE_HELP, parse_trainable

__all__ = [
    "CROSS_CHECKS", "FOLDER_PREFIX", "MONITORS", "TRAINABLE_HELP",
    "AugmentConfig", "Config", "DataConfig", "EvalConfig", "LossConfig", "ModelConfig", "OneOf", "OptimConfig", "Range",
    "Registered", "SamplerConfig", "TrainConfig",
    "apply_overrides", "data_set_options", "data_task", "dump_config", "from_dict", "import_plugins", "key", "label_format",
    "load_config", "parse_override", "parse_trainable", "parse_yaml", "read_config_file", "read_yaml_mapping",
    "to_dict", "validate", "without_retired_keys", "write_yaml",
]
