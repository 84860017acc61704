"""Peak RSS of one gradient-flow probe of the Dogs vs Cats CNN, and of its TensorBoard histograms.

    python bench/gradient_flow_memory.py

`train.gradient_flow_every` probes the training loss's gradient on a fixed batch and writes a
histogram per layer. The CNN's dense layer has 16.8M weights; tf.summary.histogram took 3.9 GB
for it (the 7.6 GB run of issue 19); kerasclf now computes the histograms with numpy. Prints one
JSON line: RSS after building the model, peak after the probe, peak after the histograms, target
for the histograms' increase. A target, not a test (memory figures depend on what else runs).
Measured alone here: 0.95 GiB model, 2.28 GiB after the probe, no increase for the histograms.
"""

import json
import resource
import tempfile

import numpy as np


def _peak_gib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main():
    import tensorflow as tf

    from kerasclf.config import load_config
    from kerasclf.data.info import DatasetInfo
    from kerasclf.models import build_model
    from kerasclf.training.gradient_flow import GradientProbe, layer_gradient_stats, probe_loss, write_histogram

    cfg = load_config("configs/catsdogs/cnn_adam.yaml", [])
    model = build_model(cfg, DatasetInfo("synthetic", ["cat", "dog"], (128, 128), 3, [120.0] * 3, [60.0] * 3))
    built = _peak_gib()
    x = np.random.default_rng(0).integers(0, 256, (cfg.train.gradient_flow_batch, 128, 128, 3)).astype("uint8")
    stats = layer_gradient_stats(model, GradientProbe(model, probe_loss(cfg))(x, np.arange(len(x)) % 2))
    probed = _peak_gib()
    with tf.summary.create_file_writer(tempfile.mkdtemp()).as_default(), tf.summary.record_if(True):
        for s in stats:
            write_histogram(f"gradients/{s['layer']}", s["values"], 0)
    print(json.dumps({"bench": "gradient_flow_memory", "weights": int(model.count_params()),
                      "peak_gib_model": round(built, 2), "peak_gib_probe": round(probed, 2),
                      "peak_gib_histograms": round(_peak_gib(), 2), "target_histogram_increase_gib": 0.25}))


if __name__ == "__main__":
    main()
