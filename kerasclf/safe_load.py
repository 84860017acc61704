"""Why a .keras file is refused: Lambda layers and classes kerasclf does not know.

Checkpoints always load with Keras's safe mode (`safe_mode=True`): it refuses to rebuild a
`Lambda` layer from the Python bytecode stored in the file (loading it could run any
code), and it can only rebuild classes that are registered. Keras reports both in its own
terms ("could not be deserialized properly"); here the file's config.json is read first
(it is plain JSON in the zip) so the refusal names the layers and says why.
The lead's checkpoint.py may absorb this module; it has no other dependency.
"""

import json
import re
import zipfile

import keras

from kerasclf.errors import CheckpointError, first_line

KERAS_MODULES = ("keras", "builtins")


def _objects(node):
    """Every serialised object (a dict with a class_name) in a Keras config tree."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def read_config(path):
    """config.json of a .keras file, or None when the file is not a .keras zip (Keras then says why)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError):
        return None


def lambda_layers(config):
    """Names of Lambda layers, and "a Python lambda" for bytecode stored elsewhere (`__lambda__`)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("class_name") == "Lambda":
                found.append(node.get("config", {}).get("name") or "Lambda")
                return  # its own function is the Lambda's bytecode
            if node.get("class_name") == "__lambda__":
                found.append("a Python lambda")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    return list(dict.fromkeys(found))


def unknown_classes(config):
    """Classes from outside Keras that are not registered in this process."""
    registered = keras.saving.get_custom_objects()
    unknown = []
    for obj in _objects(config):
        module = obj.get("module") or ""
        if module.split(".")[0] in KERAS_MODULES or "registered_name" not in obj:
            continue
        name = obj.get("registered_name") or obj["class_name"]
        if name not in registered:
            unknown.append(name)
    return list(dict.fromkeys(unknown))


def refuse_lambda(path):
    """Raise CheckpointError when `path` holds Lambda layers (checked before Keras reads it)."""
    config = read_config(path)
    lambdas = lambda_layers(config) if config is not None else []
    if lambdas:
        raise CheckpointError(
            f"Refusing to load {str(path)!r}: it contains Lambda layer(s) ({', '.join(lambdas[:5])}), which store "
            "Python bytecode that runs when the model is rebuilt, so loading an untrusted file could execute "
            "any code; kerasclf loads checkpoints in Keras's safe mode, which does not run it. Checkpoints "
            "written by `kerasclf train` never contain Lambda layers: use one of those, or rebuild the model "
            "with registered layers."
        )


def explain_load_failure(path, exc):
    """A CheckpointError for a failed safe-mode load: unknown classes named when that is the cause."""
    config = read_config(path)
    unknown = unknown_classes(config) if config is not None else []
    if not unknown:
        unknown = re.findall(r"Could not locate (?:class|function) '([^']+)'", str(exc))
    if unknown:
        return CheckpointError(
            f"Refusing to load {str(path)!r}: it uses classes this kerasclf does not know "
            f"({', '.join(unknown[:5])}). Safe mode rebuilds only registered classes, so code from another "
            "package is never imported or run on load. If it is a kerasclf checkpoint, use the kerasclf "
            "version that wrote it; otherwise train the model with `kerasclf train`."
        )
    return CheckpointError(
        f"Could not read checkpoint {str(path)!r} ({first_line(exc)}). "
        "It must be a .keras file written by `kerasclf train`; it may be truncated or from another tool."
    )
