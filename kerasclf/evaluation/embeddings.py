"""The embedding report of a split: retrieval metrics, t-SNE figures, TensorBoard projector files.

`write_embedding_report(out_dir, ...)` takes embeddings already computed (NumPy) and writes
  embeddings.json                  the metrics (kerasclf.evaluation.retrieval)
  tsne_2d.png, tsne_3d.png         scikit-learn t-SNE of a seeded, stratified subsample
  projector/                       vectors.tsv, metadata.tsv (class names), sprite.png and
                                   projector_config.pbtxt: `tensorboard --logdir <that folder>`
                                   opens them in TensorBoard's Projector tab
and returns the metrics plus the markdown section report.md shows.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image
from sklearn.manifold import TSNE

from kerasclf.evaluation import retrieval
from kerasclf.plotting import new_figure, save_figure

MAX_LEGEND_CLASSES = 20
SPRITE_MAX_SIDE = 8192  # TensorBoard's projector refuses larger sprite images


def tsne(embeddings, dims, seed=0):
    """scikit-learn t-SNE of L2-normalised embeddings into `dims` dimensions (PCA init, seeded)."""
    x = retrieval.prepare(embeddings)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    return TSNE(n_components=dims, init="pca", random_state=seed, perplexity=perplexity).fit_transform(x)


def _colours(n):
    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "gist_ncar"]
    return [cmap(i / max(n - 1, 1)) if n > 20 else cmap(i) for i in range(n)]


def marker_size(count, dims=2):
    """Scatter marker area (points^2): large for a few hundred points, smaller as they crowd."""
    size = float(np.clip(6000.0 / max(count, 1), 14.0, 60.0))
    return size * (0.8 if dims == 3 else 1.0)


def plot_tsne(points, labels, class_names, path, title):
    """Scatter of 2-D or 3-D t-SNE points coloured by class (legend up to 20 classes)."""
    dims = points.shape[1]
    fig = new_figure(8, 7)
    ax = fig.add_subplot(projection="3d" if dims == 3 else None)
    colours = _colours(len(class_names))
    for c, name in enumerate(class_names):
        mask = labels == c
        if mask.any():
            ax.scatter(*points[mask].T, s=marker_size(len(points), dims), color=colours[c], label=name,
                       alpha=0.8, linewidths=0)
    ax.set_title(title)
    if len(class_names) <= MAX_LEGEND_CLASSES:
        fig.legend(loc="outside right upper", markerscale=1.5, fontsize=8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_figure(fig, path)


def write_projector(out_dir, embeddings, labels, class_names, images=None, thumb=32):
    """TensorBoard projector files for these points; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savetxt(out / "vectors.tsv", np.asarray(embeddings, np.float32), delimiter="\t", fmt="%.6g")
    with open(out / "metadata.tsv", "w") as f:
        f.write("class\tlabel\n")  # two columns: the projector wants a header row
        for label in np.asarray(labels).tolist():
            f.write(f"{str(class_names[label]).replace(chr(9), ' ')}\t{label}\n")
    config = ['embeddings {', '  tensor_name: "embedding"', '  tensor_path: "vectors.tsv"',
              '  metadata_path: "metadata.tsv"']
    if images is not None and len(images):
        thumb = _sprite(out / "sprite.png", images, thumb)
        config += ['  sprite {', '    image_path: "sprite.png"',
                   f'    single_image_dim: {thumb}', f'    single_image_dim: {thumb}', '  }']
    (out / "projector_config.pbtxt").write_text("\n".join(config + ["}"]) + "\n")
    return str(out)


def _sprite(path, images, thumb):
    """One square grid image of thumbnails, row by row in point order; returns the thumbnail side."""
    n = len(images)
    side = math.ceil(math.sqrt(n))
    thumb = max(1, min(thumb, SPRITE_MAX_SIDE // side))
    sheet = Image.new("RGB", (side * thumb, side * thumb))
    for i in range(n):  # one image at a time: a split of files (FileImages) decodes only the shown ones
        image = np.asarray(images[i], np.uint8)
        tile = Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).convert("RGB")
        sheet.paste(tile.resize((thumb, thumb), Image.BILINEAR), ((i % side) * thumb, (i // side) * thumb))
    sheet.save(path)
    return thumb


def write_embedding_report(out_dir, embeddings, labels, class_names, *, split, images=None,
                           reference=None, tsne_points=2000, projector_points=2000, knn_k=5, seed=0,
                           link_base=None):
    """Metrics, figures and projector files for one split's embeddings.

    reference: optional (embeddings, labels) of the training split, for kNN accuracy (and
    t-SNE figures of the training split too). Returns (metrics, markdown lines); the
    markdown links figures relative to `link_base` (default: out_dir's parent, where
    report.md sits).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    y = np.asarray(labels)
    metrics = {"split": split, "size": int(len(y)), "dim": int(np.asarray(embeddings).shape[1]),
               **retrieval.retrieval_metrics(embeddings, y)}
    metrics["nmi_kmeans"] = retrieval.kmeans_nmi(embeddings, y, seed=seed)
    if reference is not None:
        metrics["knn_k"] = int(knn_k)
        metrics["knn_accuracy"] = retrieval.knn_accuracy(reference[0], reference[1], embeddings, y, k=knn_k)
    figures = []
    sets = [(split, embeddings, y)] + ([("train", *reference)] if reference is not None and split != "train" else [])
    for name, emb, lab in sets:
        # at most tsne_points: t-SNE's time and memory grow with the points (so the memory budget,
        # kerasclf.data.budget, need not count it)
        keep = retrieval.subsample(lab, tsne_points, seed)
        if len(keep) < 5:
            continue
        for dims in (2, 3):
            points = tsne(np.asarray(emb)[keep], dims, seed)
            title = f"t-SNE {dims}-D of the {name} embeddings ({len(keep)} points)"
            figures.append((title, plot_tsne(points, np.asarray(lab)[keep], class_names,
                                             out / f"tsne_{dims}d_{name}.png", title)))
    keep = retrieval.subsample(y, projector_points, seed)
    projector = write_projector(out / "projector", np.asarray(embeddings)[keep], y[keep], class_names,
                                None if images is None else images[keep])  # indexed, not converted whole
    metrics["tsne_points"], metrics["projector_points"] = int(tsne_points), int(len(keep))
    (out / "embeddings.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics, _markdown(metrics, figures, projector, Path(link_base or out.parent))


def _fmt(value):
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def _queries(metrics):
    """Which images precision@1, R-precision and MAP@R average over: queries with a class mate."""
    size, queries = metrics["size"], metrics.get("queries", metrics["size"])
    if queries == size:
        return f"{size} {metrics['split']} images, each a query against all others."
    alone = size - queries
    return (f"{queries} of the {size} {metrics['split']} images are queries against all others; the other "
            f"{alone} {'has' if alone == 1 else 'have'} no other image of {'its' if alone == 1 else 'their'} class "
            "here, so no right answer, and {} not counted in precision@1, R-precision or MAP@R."
            .format("is" if alone == 1 else "are"))


def _markdown(metrics, figures, projector, link_base):
    lines = ["## Embeddings", "",
             f"Embedding: the classification head's input ({metrics['dim']} values), L2-normalised; "
             f"{_queries(metrics)}", "",
             "| metric | value |", "|---|---|"]
    rows = [("precision@1", "precision_at_1"), ("R-precision", "r_precision"), ("MAP@R", "map_at_r"),
            ("NMI (k-means)", "nmi_kmeans"), ("mean intra-class distance", "mean_intra_distance"),
            ("mean inter-class distance", "mean_inter_distance"), ("intra/inter ratio", "intra_inter_ratio")]
    if "knn_accuracy" in metrics:
        rows.insert(3, (f"kNN accuracy (k={metrics['knn_k']}, train as reference)", "knn_accuracy"))
    lines += [f"| {label} | {_fmt(metrics.get(key))} |" for label, key in rows]
    lines += ["", f"TensorBoard projector ({metrics['projector_points']} points): "
              f"`tensorboard --logdir {projector}`", ""]
    for title, path in figures:
        rel = Path(os.path.relpath(path, link_base)).as_posix()
        lines += [f"### {title}", "", f"![{title}]({rel})", ""]
    return lines
