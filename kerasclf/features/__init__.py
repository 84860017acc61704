"""Beyond training: predict on new images, embeddings from a backbone, an SVM on them,
and an ImageNet classifier applied to another label set (zero-shot label mapping).

Layer 5 (beside training and evaluation): these read checkpoints and registered models
and reuse the evaluation package's report and figure functions.
"""
