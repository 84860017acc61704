"""Retrieval metrics on hand-computed cases; embedding report files (t-SNE, projector)."""

import json

import numpy as np
import pytest

from kerasclf.evaluation import retrieval
from kerasclf.evaluation.embeddings import write_embedding_report, write_projector


def points(*values):
    return np.asarray(values, np.float64).reshape(-1, 1)


def test_precision_r_precision_map_at_r_hand_computed():
    """1-D points, plain Euclidean (no normalisation). Neighbours of each query, nearest first:

    q0 = 0   (a, R=2): a1 (1), a4 (2.2), b2, b3     -> hit hit   P@1 1  RP 1    MAP@R 1
    q1 = 1   (a, R=2): a0 (1), a4 (1.2), b2, b3     -> hit hit   P@1 1  RP 1    MAP@R 1
    q2 = 3   (b, R=1): a4 (0.8)                      -> miss      P@1 0  RP 0    MAP@R 0
    q3 = 10  (b, R=1): b2 (7), a4 (7.8)              -> hit       P@1 1  RP 1    MAP@R 1
    q4 = 2.2 (a, R=2): b2 (0.8), a1 (1.2), a0 (2.2)  -> miss hit  P@1 0  RP 1/2  MAP@R (0 + 1/2)/2
    q5 = 100 (c, alone): R = 0, not a query (but a candidate neighbour of the others).
    """
    x = points(0, 1, 3, 10, 2.2, 100)
    y = np.array([0, 0, 1, 1, 0, 2])
    m = retrieval.retrieval_metrics(x, y, normalize=False)
    assert m["queries"] == 5
    assert m["precision_at_1"] == pytest.approx(3 / 5)
    assert m["r_precision"] == pytest.approx((1 + 1 + 0 + 1 + 0.5) / 5)
    assert m["map_at_r"] == pytest.approx((1 + 1 + 0 + 1 + 0.25) / 5)


def test_intra_inter_distances_hand_computed():
    # a: 0, 1; b: 5, 7 -> intra |0-1|, |5-7| = 1, 2 (mean 1.5); inter 5, 7, 4, 6 (mean 5.5)
    m = retrieval.retrieval_metrics(points(0, 1, 5, 7), np.array([0, 0, 1, 1]), normalize=False)
    assert m["mean_intra_distance"] == pytest.approx(1.5)
    assert m["mean_inter_distance"] == pytest.approx(5.5)
    assert m["intra_inter_ratio"] == pytest.approx(1.5 / 5.5)
    assert m["precision_at_1"] == 1.0 and m["map_at_r"] == 1.0


def test_normalised_distances_ignore_scale():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 5)), rng.integers(0, 4, 40)
    a = retrieval.retrieval_metrics(x, y)
    b = retrieval.retrieval_metrics(x * rng.uniform(0.1, 10, size=(40, 1)), y)
    for key in ("precision_at_1", "r_precision", "map_at_r", "intra_inter_ratio"):
        assert a[key] == pytest.approx(b[key])
    assert a["mean_inter_distance"] <= 2.0  # unit vectors


def test_chunked_equals_one_block(monkeypatch):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 6)), rng.integers(0, 5, 50)
    whole = retrieval.retrieval_metrics(x, y)
    monkeypatch.setattr(retrieval, "CHUNK_ROWS", 7)
    assert retrieval.retrieval_metrics(x, y) == pytest.approx(whole)


def test_map_at_r_against_brute_force_loop():
    """A second, loop-by-loop reading of the definitions, on random data with ties-free distances."""
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 3)), rng.integers(0, 4, 30)
    m = retrieval.retrieval_metrics(x, y)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    p1, rp, ap = [], [], []
    for q in range(len(y)):
        others = [i for i in range(len(y)) if i != q]
        ranked = sorted(others, key=lambda i: np.linalg.norm(xn[i] - xn[q]))
        r = sum(y[i] == y[q] for i in others)
        if r == 0:
            continue
        hits = [y[i] == y[q] for i in ranked[:r]]
        p1.append(y[ranked[0]] == y[q])
        rp.append(sum(hits) / r)
        ap.append(sum(sum(hits[: i + 1]) / (i + 1) for i in range(r) if hits[i]) / r)
    assert m["precision_at_1"] == pytest.approx(np.mean(p1))
    assert m["r_precision"] == pytest.approx(np.mean(rp))
    assert m["map_at_r"] == pytest.approx(np.mean(ap))


def test_knn_accuracy_hand_computed_and_equal_to_sklearn():
    from sklearn.neighbors import KNeighborsClassifier

    ref, ref_y = points(0, 1, 2, 10, 11), np.array([0, 0, 0, 1, 1])
    queries, query_y = points(1.5, 9, 5.8), np.array([0, 1, 1])
    # 1-NN: 1.5 -> 1 (class 0, right), 9 -> 10 (1, right), 5.8 -> 2 (0, wrong): 2/3
    assert retrieval.knn_accuracy(ref, ref_y, queries, query_y, k=1, normalize=False) == pytest.approx(2 / 3)
    rng = np.random.default_rng(3)
    a, ay, b, by = rng.normal(size=(60, 4)), rng.integers(0, 3, 60), rng.normal(size=(25, 4)), rng.integers(0, 3, 25)
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    want = KNeighborsClassifier(n_neighbors=5).fit(an, ay).score(bn, by)
    assert retrieval.knn_accuracy(a, ay, b, by, k=5) == pytest.approx(want)


def test_nmi_of_separated_and_mixed_clusters():
    rng = np.random.default_rng(4)
    centres = np.eye(3) * 10
    y = np.repeat(np.arange(3), 20)
    separated = centres[y] + rng.normal(scale=0.1, size=(60, 3))
    assert retrieval.kmeans_nmi(separated, y, normalize=False) == pytest.approx(1.0)
    shuffled = rng.permutation(y)  # labels unrelated to the clusters
    assert retrieval.kmeans_nmi(separated, shuffled, normalize=False) < 0.2


def test_subsample_is_seeded_stratified_and_bounded():
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    keep = retrieval.subsample(y, 40, seed=3)
    assert len(keep) == 40 and np.all(np.diff(keep) > 0)
    np.testing.assert_array_equal(keep, retrieval.subsample(y, 40, seed=3))
    assert set(np.unique(y[keep])) == {0, 1, 2, 3}
    np.testing.assert_array_equal(retrieval.subsample(y, 1000), np.arange(100))


def test_projector_files(tmp_path):
    rng = np.random.default_rng(5)
    emb, y = rng.normal(size=(10, 4)), np.array([0, 1, 2] * 3 + [0])
    images = rng.integers(0, 256, size=(10, 8, 8, 3), dtype=np.uint8)
    out = write_projector(tmp_path / "proj", emb, y, ["cat", "dog", "sea lion"], images, thumb=16)
    vectors = np.loadtxt(f"{out}/vectors.tsv", delimiter="\t")
    np.testing.assert_allclose(vectors, emb, rtol=1e-5)
    rows = open(f"{out}/metadata.tsv").read().splitlines()
    assert rows[0] == "class\tlabel" and rows[1:4] == ["cat\t0", "dog\t1", "sea lion\t2"] and len(rows) == 11
    from PIL import Image

    sprite = Image.open(f"{out}/sprite.png")
    assert sprite.size == (4 * 16, 4 * 16)  # ceil(sqrt(10)) = 4 thumbnails a side
    # the third thumbnail (row 0, column 2) is image 2, resized
    tile = np.asarray(sprite)[0:16, 32:48]
    want = np.asarray(Image.fromarray(images[2]).resize((16, 16), Image.BILINEAR))
    np.testing.assert_array_equal(tile, want)
    config = open(f"{out}/projector_config.pbtxt").read()
    for fragment in ('tensor_path: "vectors.tsv"', 'metadata_path: "metadata.tsv"',
                     'image_path: "sprite.png"', "single_image_dim: 16"):
        assert fragment in config


@pytest.mark.slow
def test_embedding_report_writes_metrics_figures_and_markdown(tmp_path):
    rng = np.random.default_rng(6)
    y = np.repeat(np.arange(3), 15)
    emb = np.eye(3)[y] * 5 + rng.normal(scale=0.3, size=(45, 3))
    ref_y = np.repeat(np.arange(3), 10)
    ref = np.eye(3)[ref_y] * 5 + rng.normal(scale=0.3, size=(30, 3))
    metrics, lines = write_embedding_report(
        tmp_path / "embeddings", emb, y, ["a", "b", "c"], split="test", reference=(ref, ref_y),
        images=rng.integers(0, 255, (45, 8, 8, 3), dtype=np.uint8), tsne_points=30, projector_points=20)
    assert metrics["precision_at_1"] == 1.0 and metrics["knn_accuracy"] == 1.0
    assert metrics["intra_inter_ratio"] < 0.5
    saved = json.loads((tmp_path / "embeddings" / "embeddings.json").read_text())
    assert saved["map_at_r"] == metrics["map_at_r"]
    for name in ("tsne_2d_test.png", "tsne_3d_test.png", "tsne_2d_train.png", "tsne_3d_train.png"):
        assert (tmp_path / "embeddings" / name).stat().st_size > 1000
    text = "\n".join(lines)
    assert "MAP@R" in text and "(embeddings/tsne_3d_test.png)" in text
    assert len(open(tmp_path / "embeddings" / "projector" / "vectors.tsv").read().splitlines()) == 20
