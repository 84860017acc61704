"""Freeze policies: the `model.trainable` toggle (full | head | last:N | from:<layer_name>).

Vocabulary
----------
leaf layer
    Every layer of the model, in topological order, where a nested `keras.Model` (the
    `backbone` sub-model), or a wrapper layer around one (airbench's test-time augmentation
    `FlipTTA`), is replaced by its own layers, recursively. Layers *inside* a
    custom layer (a ViT encoder block's attention and MLP) belong to that layer.
weight layer
    A leaf layer that owns at least one trainable-capable variable (one created with
    `trainable=True`: kernels, biases, embeddings, a class token; *not* BatchNorm moving
    statistics or random-seed state) and that is not a normalization layer.
normalization layer
    A leaf layer whose class name ends in "Normalization" (BatchNormalization,
    LayerNormalization, GroupNormalization, ...) or that sets `normalization_part = True`. It is never counted as a weight layer: it
    follows the weight layer that produced its input, found by walking back through
    single-input layers without weights (Activation, ZeroPadding, pooling, Dropout). In the
    conv -> BN nets here (VGG-style CNNs, ResNet v1, ResNet-9) that is the conv it
    normalizes; a ViT's final LayerNorm follows the last encoder block. When no such
    producer exists (a pre-activation norm after an Add, or right after the input) it
    follows the next weight layer in topological order.
head layer
    A weight layer whose name starts with "head_" (the task head, kerasclf.models.heads,
    names its dense layer `head_dense`).

Policies
--------
full          every weight layer (and so every normalization layer) trains.
head          only head layers train.
last:N        the last N weight layers, counted from the output, train.
from:<name>   the named layer and every weight layer after it (topological order) train;
              <name> may be a leaf layer, a nested model (`from:backbone`) or a path such
              as `backbone/block5_conv1`.

Layers without weights keep `trainable=True` (the flag changes nothing for them) unless
they sit in a nested model with nothing trainable, which is then frozen as a whole.
A frozen BatchNormalization runs in inference mode (Keras 3: `trainable=False` on a BN layer
makes it use, and not update, its moving statistics). The flags are ordinary layer
attributes, saved in each layer's config, so they survive `model.save("x.keras")` and
`keras.saving.load_model(..., safe_mode=True)`; `describe_trainable` reads them back.
Apply a policy before `compile()`: Keras reads the flags when it builds the train step.
"""

import keras

from kerasclf.config import TRAINABLE_HELP, parse_trainable
from kerasclf.errors import ConfigError, closest
from kerasclf.keras_private import created_trainable_variables


def apply_trainable(model, spec):
    """Set every layer's `trainable` flag for policy `spec`; return `describe_trainable`'s summary.

    The summary's "trainable" is `spec` as given (normalised to text).
    """
    kind, arg = parse_trainable(spec)
    graph = _Graph(model)
    weight = graph.weight_indices()
    if not weight:
        raise ConfigError(f"model.trainable = {spec!r}: model '{model.name}' has no layers with weights to train.")

    if kind == "full":
        chosen = set(weight)
    elif kind == "head":
        chosen = {i for i in weight if graph.leaves[i][1].name.startswith("head_")}
        if not chosen:
            raise ConfigError(
                f"model.trainable = 'head': model '{model.name}' has no head layers (named head_*). "
                f"Use last:N or from:<layer_name> instead. Valid forms: {TRAINABLE_HELP}."
            )
    elif kind == "last":
        if arg > len(weight):
            raise ConfigError(
                f"model.trainable = 'last:{arg}': model '{model.name}' has only {len(weight)} weight layers "
                f"(normalization layers are not counted). Use last:{len(weight)} or full."
            )
        chosen = set(weight[-arg:])
    else:
        cut = graph.find(arg)
        chosen = {i for i in weight if i >= cut}

    states = {}
    for i in weight:
        states[i] = i in chosen
    for i in graph.norm_indices():
        owner = graph.owner(i)
        states[i] = owner in chosen if owner is not None else kind == "full"
    if kind == "from":
        named = graph.find(arg)
        if named in states:  # the named layer itself trains, even a normalization layer
            states[named] = True

    # Reset everything (the setter recurses into sub-models and sublayers), then freeze
    # leaves, then freeze whole sub-models with nothing left to train.
    set_trainable(model, True)
    for i, on in states.items():
        set_trainable(graph.leaves[i][1], on)
    for path, container in graph.containers:
        inside = [on for i, on in states.items() if graph.leaves[i][0].startswith(path + "/")]
        if not any(inside):
            set_trainable(container, False)
    summary = describe_trainable(model)
    summary["trainable"] = str(spec if spec is not None else "full")
    return summary


def describe_trainable(model):
    """Parameter counts and frozen layers of a built (or reloaded) model.

    Returns params_total / params_trainable / params_non_trainable (what the optimizer will
    update, from Keras's own `trainable_weights`), weight_layers, trainable_weight_layers,
    frozen_layers (paths of frozen weight and normalization layers) and trainable: the
    policy that reproduces the flags ("full", "head", "last:N", "none" or "custom").
    """
    graph = _Graph(model)
    total = sum(_size(v) for v in model.weights)
    trainable = sum(_size(v) for v in model.trainable_weights)
    weight = graph.weight_indices()
    on = {i for i in weight if graph.effective_trainable(i)}
    frozen = [
        graph.leaves[i][0]
        for i in sorted(set(weight) | set(graph.norm_indices()))
        if not graph.effective_trainable(i)
    ]
    return {
        "params_total": int(total),
        "params_trainable": int(trainable),
        "params_non_trainable": int(total - trainable),
        "weight_layers": len(weight),
        "trainable_weight_layers": len(on),
        "frozen_layers": frozen,
        "trainable": _infer_spec(graph, weight, on),
    }


def set_trainable(layer, value):
    """`layer.trainable = value`, always applied to its sublayers and variables.

    On the TensorFlow backend `layer.trainable = True` is skipped when the layer's own flag
    is already True (tf AutoTrackable short-circuits `self.x = self.x` for identical
    values), which would leave frozen sublayers frozen; calling the property setter avoids that.
    """
    type(layer).trainable.fset(layer, bool(value))


def weight_layer_names(model):
    """Paths of the weight layers, input to output (what last:N counts)."""
    graph = _Graph(model)
    return [graph.leaves[i][0] for i in graph.weight_indices()]


def weight_layers(model):
    """(path, layer) of the weight layers, input to output."""
    graph = _Graph(model)
    return [graph.leaves[i] for i in graph.weight_indices()]


def is_normalization(layer):
    """A normalization layer, or one that declares itself part of one (`normalization_part = True`,
    e.g. airbench's `ScaledBias`, the BatchNorm shift under another parametrisation)."""
    return type(layer).__name__.endswith("Normalization") or getattr(layer, "normalization_part", False)


def trainable_capable_weights(layer):
    """Variables of `layer` (and its sublayers) created trainable, whatever the flags say now.

    Keras keeps a variable in the layer's trainable store even while the layer is frozen
    (it only flips `variable.trainable`), so this is stable across freezing and reloading.
    """
    return created_trainable_variables(layer)


def _size(variable):
    n = 1
    for d in variable.shape:
        n *= int(d)
    return n


def _infer_spec(graph, weight, on):
    if len(on) == len(weight):
        return "full"
    if not on:
        return "none"
    head = {i for i in weight if graph.leaves[i][1].name.startswith("head_")}
    if on == head:
        return "head"
    if on == set(weight[-len(on):]):
        return f"last:{len(on)}"
    return "custom"


class _Graph:
    """The model's leaf layers in topological order, with their paths and containers."""

    def __init__(self, model):
        self._keras = keras
        self.model = model
        self.leaves = []  # (path, layer)
        self.containers = []  # (path, nested model)
        self._walk(model, "")
        self._index = {id(layer): i for i, (_, layer) in enumerate(self.leaves)}
        self._weight = [i for i, (_, layer) in enumerate(self.leaves) if self._is_weight(layer)]
        self._norm = [
            i
            for i, (_, layer) in enumerate(self.leaves)
            if is_normalization(layer) and trainable_capable_weights(layer)
        ]

    def _walk(self, model, prefix):
        for layer in model.layers:
            path = f"{prefix}{layer.name}"
            inner = self._inner_model(layer)
            if inner is not None:
                self.containers.append((path, layer))
                self._walk(inner, path + "/")
            else:
                self.leaves.append((path, layer))

    def _inner_model(self, layer):
        """The model inside a nested model or a wrapper of one (airbench's FlipTTA), else None."""
        if isinstance(layer, self._keras.Model):
            return layer
        if isinstance(layer, self._keras.layers.Wrapper) and isinstance(layer.layer, self._keras.Model):
            return layer.layer
        return None

    def _is_weight(self, layer):
        return bool(trainable_capable_weights(layer)) and not is_normalization(layer)

    def weight_indices(self):
        return list(self._weight)

    def norm_indices(self):
        return list(self._norm)

    def effective_trainable(self, i):
        """Whether the optimizer will update the layer: Keras collects a model's trainable
        weights by each variable's own flag (a sub-model's flag is only consulted when the
        sub-model itself is asked), so read the variables."""
        layer = self.leaves[i][1]
        return self.model.trainable and any(v.trainable for v in trainable_capable_weights(layer))

    def owner(self, i):
        """Index of the weight layer a normalization layer follows (see module docstring)."""
        producer = self._producer(self.leaves[i][1])
        if producer is not None:
            return producer
        later = [w for w in self._weight if w > i]
        if later:
            return later[0]
        earlier = [w for w in self._weight if w < i]
        return earlier[-1] if earlier else None

    def _producer(self, layer):
        weight = set(self._weight)
        nodes = getattr(layer, "_inbound_nodes", None)
        node = nodes[0] if nodes else None
        for _ in range(10_000):  # a walk back through the graph; bounded for safety
            if node is None:
                return None
            parents = node.parent_nodes
            if len(parents) != 1:
                return None
            op = parents[0].operation
            index = self._index.get(id(op))
            if index is None:  # an InputLayer, a nested model's boundary, or unknown
                return None
            if index in weight:
                return index
            if isinstance(op, self._keras.layers.InputLayer):
                return None
            if not is_normalization(op) and trainable_capable_weights(op):
                return None
            node = parents[0]
        return None

    def find(self, name):
        """Leaf index where `from:<name>` starts: a leaf, a nested model, or a path."""
        by_path = {path: i for i, (path, _) in enumerate(self.leaves)}
        if name in by_path:
            return by_path[name]
        for path, container in self.containers:
            if name == path or (name == container.name and "/" not in name):
                first = [i for i, (p, _) in enumerate(self.leaves) if p.startswith(path + "/")]
                if first:
                    return first[0]
        matches = [i for i, (_, layer) in enumerate(self.leaves) if layer.name == name]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            paths = ", ".join(self.leaves[i][0] for i in matches)
            raise ConfigError(
                f"model.trainable = 'from:{name}': several layers are named {name!r} ({paths}); "
                "write the full path, e.g. from:" + self.leaves[matches[0]][0] + "."
            )
        names = [layer.name for _, layer in self.leaves] + [p for p, _ in self.leaves]
        names += [c.name for _, c in self.containers]
        near = closest(name, names)
        hint = f' Did you mean "{near}"?' if near else ""
        raise ConfigError(
            f"model.trainable = 'from:{name}': model '{self.model.name}' has no layer named {name!r}.{hint} "
            "Layer names are those of model.summary(expand_nested=True); a layer inside the backbone "
            "can also be written backbone/<name>."
        )
