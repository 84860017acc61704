"""How good an embedding is for retrieval and clustering: numbers only (NumPy + scikit-learn).

Names and definitions follow pytorch-metric-learning's `AccuracyCalculator` with the
query set as its own reference set ("embeddings come from the same source"):
- each query's neighbours are all other points, nearest first (the query itself excluded);
- R = the number of other points with the query's label;
- precision_at_1: the nearest neighbour has the query's label;
- r_precision: the share of the R nearest neighbours with the query's label;
- map_at_r (MAP@R): (1/R) * sum over i <= R of [neighbour i has the label] * precision@i;
- a query alone in its class (R = 0) is left out of all three; each is a mean over queries.
Distances are Euclidean on L2-normalised embeddings (`normalize=True`, what
pytorch-metric-learning's testers do by default). Unlike the library we do not cap the
neighbour count at 1023 (a faiss limit), and ties are broken by index.

Also: kNN accuracy (scikit-learn's KNeighborsClassifier fitted on reference embeddings),
NMI of k-means clusters (scikit-learn, as many clusters as classes), and the mean
intra-class / inter-class distance and their ratio (smaller: tighter, better separated
classes; what center loss is meant to lower).
"""

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

CHUNK_ROWS = 1024  # query rows per distance block: bounds memory at CHUNK_ROWS * N floats


def prepare(embeddings, normalize=True):
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {x.shape}")
    if normalize:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def _distance_block(queries, x, sq_norms):
    sq = sq_norms[queries][:, None] - 2.0 * x[queries] @ x.T + sq_norms[None, :]
    return np.sqrt(np.maximum(sq, 0.0))


def retrieval_metrics(embeddings, labels, normalize=True):
    """{precision_at_1, r_precision, map_at_r, mean_intra_distance, mean_inter_distance,
    intra_inter_ratio, queries}: see the module doc. NaN where a value is undefined (no
    query with a class mate; no pair of different classes)."""
    x = prepare(embeddings, normalize)
    y = np.asarray(labels).reshape(-1)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} embeddings but {len(y)} labels")
    n = len(y)
    classes, counts = np.unique(y, return_counts=True)
    r_of = dict(zip(classes.tolist(), (counts - 1).tolist()))
    r = np.array([r_of[v] for v in y.tolist()])
    k = int(r.max()) if n else 0
    sq_norms = np.sum(x * x, axis=1)
    p1, rp, mapr = [], [], []
    intra_sum = inter_sum = 0.0
    ranks = np.arange(1, k + 1)
    for start in range(0, n, CHUNK_ROWS):
        rows = np.arange(start, min(start + CHUNK_ROWS, n))
        dist = _distance_block(rows, x, sq_norms)
        same = y[rows][:, None] == y[None, :]
        dist[np.arange(len(rows)), rows] = 0.0
        intra_sum += dist[same].sum()  # the zero self-distances add nothing
        inter_sum += dist[~same].sum()
        if k == 0:
            continue
        dist[np.arange(len(rows)), rows] = np.inf  # a query is not its own neighbour
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        hits = y[order] == y[rows][:, None]  # (rows, k)
        r_rows = r[rows]
        within_r = ranks[None, :] <= r_rows[:, None]
        keep = r_rows > 0
        hits_r = hits & within_r
        precision_at_i = np.cumsum(hits_r, axis=1) / ranks[None, :]
        p1.append(hits[keep, 0])
        rp.append(hits_r[keep].sum(1) / r_rows[keep])
        mapr.append((precision_at_i * hits_r)[keep].sum(1) / r_rows[keep])
    n_intra = int(np.sum(counts * (counts - 1)))
    n_inter = n * n - int(np.sum(counts * counts))
    intra = intra_sum / n_intra if n_intra else float("nan")
    inter = inter_sum / n_inter if n_inter else float("nan")
    mean = lambda parts: float(np.concatenate(parts).mean()) if parts and sum(map(len, parts)) else float("nan")  # noqa: E731
    return {
        "precision_at_1": mean(p1),
        "r_precision": mean(rp),
        "map_at_r": mean(mapr),
        "mean_intra_distance": float(intra),
        "mean_inter_distance": float(inter),
        "intra_inter_ratio": float(intra / inter) if n_intra and n_inter and inter > 0 else float("nan"),
        "queries": int(np.sum(r > 0)),
    }


def knn_accuracy(reference, reference_labels, queries, query_labels, k=5, normalize=True):
    """Accuracy of scikit-learn's KNeighborsClassifier (k neighbours, Euclidean) fitted on
    the reference embeddings, on the queries."""
    ref = prepare(reference, normalize)
    k = min(int(k), len(ref))
    clf = KNeighborsClassifier(n_neighbors=k).fit(ref, np.asarray(reference_labels))
    return float(clf.score(prepare(queries, normalize), np.asarray(query_labels)))


def kmeans_nmi(embeddings, labels, seed=0, normalize=True):
    """Normalised mutual information between the labels and k-means clusters (k = class count)."""
    y = np.asarray(labels)
    k = len(np.unique(y))
    if k < 2:
        return float("nan")
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(prepare(embeddings, normalize))
    return float(normalized_mutual_info_score(y, clusters))


def subsample(labels, max_points, seed=0):
    """Sorted indices of a seeded, stratified subsample of at most `max_points` points."""
    y = np.asarray(labels)
    n = len(y)
    if max_points is None or n <= max_points:
        return np.arange(n)
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    stratify = y if counts.min() >= 2 and max_points >= len(counts) else None
    keep, _ = train_test_split(np.arange(n), train_size=max_points, random_state=seed, stratify=stratify)
    return np.sort(keep)
