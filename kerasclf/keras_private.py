"""The one place kerasclf touches Keras's (and one of JAX's) private API, where there is no public equivalent.

Each helper names what it reads and why no public call does it; the pin in setup.cfg
(keras>=3.15, the oldest version the suite runs against) is what these were checked on.
If a Keras release moves one, only this module changes.

Subclasses of Keras classes also override or call their base class's protected hooks, which
is how Keras means them to be extended (tests/test_layers.py allows `self._x` only):
ModelCheckpoint._save_model / _get_file_path / _should_save_model (runs/artefacts.py: atomic
saves), EarlyStopping._set_monitor_op / _is_improvement (runs/resume.py: patience across a
resume), Optimizer._update_model_variables_moving_average / _model_variables_moving_average
(training/lookahead.py: Lookahead on Keras's EMA machinery).
"""

import keras


def sublayers(layer, recursive=True) -> list:
    """Every layer under `layer` (not itself): nested models, wrappers and the sublayers a custom
    layer holds as attributes. `Model.layers` is public but lists only a model's direct layers,
    and a plain Layer has no `.layers`; Keras's own walk is `_flatten_layers`."""
    if not hasattr(layer, "_flatten_layers"):
        return list(getattr(layer, "layers", []))
    return list(layer._flatten_layers(include_self=False, recursive=recursive))


def producing_inputs(tensor) -> list:
    """The input tensors of the operation that produced a symbolic (functional) tensor; [] for
    a model input or a tensor without history (`_keras_history` / `_inbound_nodes`)."""
    history = getattr(tensor, "_keras_history", None)
    if history is None:
        return []
    return list(history.operation._inbound_nodes[history.node_index].input_tensors)


def created_trainable_variables(layer) -> list:
    """Variables of `layer` and its sublayers created trainable, whatever the trainable flags say
    now. Public `trainable_weights` is empty while a layer is frozen; Keras keeps such variables
    in the layer's `_trainable_variables` store and only flips `variable.trainable`."""
    seen, out, stack = set(), [], [layer]
    while stack:
        current = stack.pop()
        for v in getattr(current, "_trainable_variables", []):
            if id(v) not in seen:
                seen.add(id(v))
                out.append(v)
        stack.extend(getattr(current, "_layers", []))
    return out


def tensorboard_writers(callback: keras.callbacks.TensorBoard) -> list:
    """The summary writers a TensorBoard callback has opened (to flush them after an epoch:
    the callback itself flushes only when training ends)."""
    return list(callback._writers.values())


def tensorboard_train_step(callback: keras.callbacks.TensorBoard) -> int:
    """Batch-level summary steps the callback has written (its x axis for batch summaries)."""
    return int(callback._global_train_batch)


def set_tensorboard_train_step(callback: keras.callbacks.TensorBoard, step: int) -> None:
    """Continue the batch-level x axis at `step` (a resumed run or a second phase); the
    public `initial_epoch` of fit moves only the epoch axis."""
    callback._global_train_batch = int(step)


def jax_gpu_started() -> bool:
    """Whether JAX has already initialised a GPU backend (then XLA flags set now come too late).
    JAX has no public query that does not itself start the backends; if the private attribute
    moves, this says "not started" (no warning)."""
    try:
        from jax._src import xla_bridge  # lazy: JAX is optional

        return any(name in ("cuda", "rocm", "gpu") for name in xla_bridge._backends)
    except Exception:
        return False


def called_output(layer):
    """The tensor `layer` produced where its model calls it. `Layer.output` is that for a layer,
    but a nested model's `.output` is its own graph's output, not connected to the enclosing
    model's inputs (Grad-CAM on a backbone model); its call in the enclosing graph is its last
    inbound node, which no public attribute exposes."""
    nodes = getattr(layer, "_inbound_nodes", None) or []
    if isinstance(layer, keras.Model) and nodes:
        outputs = nodes[-1].output_tensors
        return outputs[0] if len(outputs) == 1 else outputs
    return layer.output
