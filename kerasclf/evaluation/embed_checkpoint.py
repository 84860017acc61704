"""`kerasclf evaluate --embeddings`: a checkpoint's embeddings of a split -> the embedding report.

The embedding is the input of the classification head (kerasclf.models.embedding_tensor).
The evaluated split is embedded in full; the training split, which serves as kNN reference and gets its own t-SNE figures, is embedded on a seeded,
stratified subsample of at most REFERENCE_POINTS images (it can be large, and every image
is a forward pass).
"""

from pathlib import Path

from kerasclf.evaluation import retrieval
from kerasclf.evaluation.embeddings import write_embedding_report
from kerasclf.models import embedding_model

REFERENCE_POINTS = 5000


def embed(extractor, images, batch_size=256):
    return extractor.predict(images, batch_size=batch_size, verbose=0)


def add_embedding_report(model, dataset, split, out_dir, batch_size=256, tsne_points=2000, seed=0):
    """Write <out_dir>/embeddings/ and append its section to <out_dir>/report.md; returns the metrics."""

    out_dir = Path(out_dir)
    extractor = embedding_model(model)  # one model: one compiled predict function for both splits
    chosen = dataset.split(split)
    reference = None
    if split != "train" and dataset.train is not None and len(dataset.train):
        keep = retrieval.subsample(dataset.train.y, REFERENCE_POINTS, seed)
        reference = (embed(extractor, dataset.train.x[keep], batch_size), dataset.train.y[keep])
    metrics, lines = write_embedding_report(
        out_dir / "embeddings", embed(extractor, chosen.x, batch_size), chosen.y, dataset.info.class_names,
        split=split, images=chosen.x, reference=reference, tsne_points=tsne_points,
        projector_points=tsne_points, seed=seed, link_base=out_dir,
    )
    report = out_dir / "report.md"
    if report.is_file():
        report.write_text(report.read_text().rstrip("\n") + "\n\n" + "\n".join(lines) + "\n")
    return metrics
