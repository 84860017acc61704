"""An auxiliary loss (loss.aux) added through `plugins:` trains like a built-in one."""

import csv

import pytest

from kerasclf.config import load_config
from kerasclf.errors import ConfigError
from kerasclf.registry import AUX_LOSSES
from kerasclf.training.run import train

# A constant auxiliary loss with one log: its value is known without running it, so the
# history shows whether training computed, weighted and logged the plugin's term.
PLUGIN = '''
import keras
from keras import ops

from kerasclf.registry import AUX_LOSSES


class Constant(keras.layers.Layer):
    def call(self, embeddings, labels, training=None):
        zero = ops.sum(embeddings) * 0.0  # keeps the graph connected to the embedding
        return zero + 0.25, {"constant_seen": zero + 1.0}


@AUX_LOSSES.register("constant_quarter", description="0.25, whatever the embedding", logs=("constant_seen",))
def constant_quarter(loss_cfg, num_classes):
    return Constant(name="constant_quarter")
'''

TINY = ["data.source=synthetic", "model.name=cnn", "model.filters=[8]", "model.dense=[16]", "train.epochs=1",
        "train.verbose=0", "train.evaluate_after=false"]


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "my_aux.py"
    path.write_text(PLUGIN)
    return path


@pytest.mark.backend_agnostic
def test_a_plugin_aux_loss_passes_validation_and_trains_one_epoch(plugin, tmp_path):
    cfg = load_config(None, [*TINY, f"plugins=[{plugin}]", "loss.aux=constant_quarter", "loss.aux_weight=2",
                             f"train.log_dir={tmp_path / 'logs'}"])
    assert "constant_quarter" in AUX_LOSSES.names()
    run_dir, metrics = train(cfg, verbose=0)
    rows = list(csv.DictReader(open(run_dir / "history.csv")))
    assert len(rows) == 1 and metrics["aux_loss"] == "constant_quarter"
    assert float(rows[0]["aux_loss"]) == pytest.approx(0.25)
    assert float(rows[0]["constant_seen"]) == pytest.approx(1.0)
    assert float(rows[0]["val_aux_loss"]) == pytest.approx(0.25)


def test_an_unknown_aux_loss_is_refused_naming_the_registered_ones():
    with pytest.raises(ConfigError) as info:
        load_config(None, ["loss.aux=tripplet"])
    message = str(info.value)
    assert message.startswith("loss.aux must be a registered auxiliary loss: one of none, ")
    assert "triplet" in message and 'Did you mean "triplet"?' in message
