"""Pascal VOC loaders on small files written in the real VOCdevkit formats (no download).

Annotations are XML with `difficult` and `truncated` objects, SegmentationClass masks are
palette-mode PNGs (made with PIL's putpalette) with 255 borders, JPEGImages are JPEGs, and
ImageSets list the ids, as in the official archives.
"""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kerasclf.data.sources import voc

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["resnet50", "resnet50_aug", "seg_resnet50", "seg_resnet50_aug"]

# id -> objects (name, difficult, truncated)
OBJECTS = {
    "2008_000001": [("dog", 0, 0), ("person", 0, 1)],
    "2008_000002": [("cat", 1, 0)],  # only a difficult cat
    "2008_000003": [("car", 0, 1), ("car", 1, 0), ("bus", 0, 0)],
    "2008_000004": [("aeroplane", 0, 0)],
    "2008_000005": [("tvmonitor", 0, 0), ("chair", 1, 1)],
    "2008_000006": [("sheep", 0, 0), ("cow", 0, 1)],
}
TRAIN, VAL = ["2008_000001", "2008_000002", "2008_000003", "2008_000004"], ["2008_000005", "2008_000006"]


def _xml(objects, width=40, height=30):
    parts = [f"<annotation><folder>VOC2012</folder><size><width>{width}</width><height>{height}</height>"
             "<depth>3</depth></size><segmented>1</segmented>"]
    for name, difficult, truncated in objects:
        parts.append(
            f"<object><name>{name}</name><pose>Unspecified</pose><truncated>{truncated}</truncated>"
            f"<difficult>{difficult}</difficult><bndbox><xmin>2</xmin><ymin>3</ymin><xmax>20</xmax>"
            "<ymax>25</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def _mask(seed, height=30, width=40):
    """Class indices: background, one object rectangle of class 1 + seed % 20, 255 around it."""
    mask = np.zeros((height, width), np.uint8)
    cls = 1 + seed % 20
    mask[8:22, 10:30] = 255  # the void band along the object's border...
    mask[10:20, 12:28] = cls  # ...around the object
    return mask


def make_voc_tree(root, year="2012", size=(30, 40)):
    """A tiny VOCdevkit/VOC<year> in the official layout; returns the VOC<year> folder."""
    base = Path(root) / "VOCdevkit" / f"VOC{year}"
    for sub in ("Annotations", "JPEGImages", "SegmentationClass", "ImageSets/Main", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    palette = voc.voc_palette().reshape(-1).tolist()
    rng = np.random.default_rng(0)
    for k, (image_id, objects) in enumerate(OBJECTS.items()):
        (base / "Annotations" / f"{image_id}.xml").write_text(_xml(objects, size[1], size[0]))
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(base / "JPEGImages" / f"{image_id}.jpg")
        png = Image.fromarray(_mask(k, *size), mode="P")
        png.putpalette(palette)
        png.save(base / "SegmentationClass" / f"{image_id}.png")
    for kind in ("Main", "Segmentation"):
        (base / "ImageSets" / kind / "train.txt").write_text("\n".join(TRAIN) + "\n")
        (base / "ImageSets" / kind / "val.txt").write_text("\n".join(VAL) + "\n")
    return base


def test_palette_is_the_voc_colour_map():
    palette = voc.voc_palette()
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]  # aeroplane
    assert palette[15].tolist() == [192, 128, 128]  # person
    assert palette[255].tolist() == [224, 224, 192]  # void


@pytest.mark.parametrize("difficult,truncated,expected", [
    ("exclude", "include", {"2008_000001": {"dog", "person"}, "2008_000002": set(), "2008_000003": {"car", "bus"}}),
    ("include", "include", {"2008_000001": {"dog", "person"}, "2008_000002": {"cat"}, "2008_000003": {"car", "bus"}}),
    ("exclude", "exclude", {"2008_000001": {"dog"}, "2008_000002": set(), "2008_000003": {"bus"}}),
    ("include", "exclude", {"2008_000001": {"dog"}, "2008_000002": {"cat"}, "2008_000003": {"car", "bus"}}),
])
def test_annotations_give_labels_with_explicit_difficult_and_truncated_rules(tmp_path, difficult, truncated, expected):
    root = make_voc_tree(tmp_path)
    for image_id, names in expected.items():
        labels = voc.parse_annotation(root / "Annotations" / f"{image_id}.xml", difficult, truncated)
        assert {voc.CLASSES[i] for i in labels} == names


def test_multilabel_splits_follow_imagesets(tmp_path):
    root = make_voc_tree(tmp_path)
    raw = voc.load_multilabel(root, (16, 16), "stretch")
    assert raw.class_names == list(voc.CLASSES) and len(raw.class_names) == 20
    assert raw.splits["train"].x.shape == (4, 16, 16, 3) and raw.splits["train"].x.dtype == np.uint8
    y = raw.splits["train"].y
    assert y.shape == (4, 20)
    assert [Path(p).stem for p in raw.splits["train"].paths] == TRAIN
    assert [Path(p).stem for p in raw.splits["test"].paths] == VAL  # the official val list is the test split
    assert {voc.CLASSES[i] for i in np.flatnonzero(y[0])} == {"dog", "person"}
    assert y[1].sum() == 0  # a difficult object alone labels nothing (VOC's evaluation rule)
    test_y = raw.splits["test"].y
    assert {voc.CLASSES[i] for i in np.flatnonzero(test_y[0])} == {"tvmonitor"}


def test_masks_are_palette_indices_with_255_kept(tmp_path):
    root = make_voc_tree(tmp_path)
    mask = voc.read_mask(root / "SegmentationClass" / "2008_000001.png")
    np.testing.assert_array_equal(mask, _mask(0))
    raw = voc.load_segmentation(root, (30, 40), "stretch")
    assert raw.class_names[0] == "background" and len(raw.class_names) == 21
    masks = raw.splits["train"].y
    assert masks.shape == (4, 30, 40) and masks.dtype == np.uint8
    np.testing.assert_array_equal(masks[2], _mask(2))
    assert set(np.unique(masks)) == {0, 1, 2, 3, 4, 255}


def test_mask_resize_is_nearest_and_pad_is_void():
    mask = _mask(4)
    small = voc.fit_mask(mask, (15, 20), "stretch")
    assert set(np.unique(small)) <= set(np.unique(mask))  # no blended indices
    padded = voc.fit_mask(mask, (40, 40), "pad")
    assert (padded[:5] == 255).all()  # letterbox rows are void, not background


def test_rgb_mask_is_refused(tmp_path):
    path = tmp_path / "rgb.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(ValueError, match="palette"):
        voc.read_mask(path)


def test_no_copy_and_no_network_says_where_to_put_the_files(tmp_path):
    from kerasclf.errors import DataError

    with pytest.raises(DataError) as info:
        voc.ensure_root(tmp_path, "2012")
    message = str(info.value)
    assert "VOCtrainval_11-May-2012.tar" in message
    assert "host.robots.ox.ac.uk" in message
    assert str(tmp_path / "VOCdevkit" / "VOC2012") in message


def test_an_existing_copy_is_read_offline_through_build_dataset(tmp_path):
    from kerasclf.config import load_config
    from kerasclf.data import build_dataset

    make_voc_tree(tmp_path)
    cfg = load_config(overrides=[f"data.data_dir={tmp_path}", "data.source=voc2012-seg", "data.image_size=[24,32]",
                                 "data.val_fraction=0.25", "loss.name=segmentation_crossentropy"])
    data = build_dataset(cfg.data)
    assert data.info.task == "segmentation"
    assert (len(data.train), len(data.val), len(data.test)) == (3, 1, 2)
    assert data.train.y.shape[1:] == (24, 32)


@pytest.mark.parametrize("name", CONFIGS)
def test_voc_configs_dry_run_on_a_tiny_tree(cli, tmp_path, name):
    make_voc_tree(tmp_path)
    logs = tmp_path / "logs"
    result = cli("train", "--config", REPO_ROOT / "configs" / "voc" / f"{name}.yaml", "--dry-run", "--data-dir", tmp_path,
                 "--set", "data.image_size=[32,32]", "--set", "model.weights=none", "--set", f"train.log_dir={logs}")
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    task = "segmentation" if name.startswith("seg") else "multilabel"
    assert summary["task"] == task
    assert summary["num_classes"] == (21 if task == "segmentation" else 20)
    assert summary["model"] == "resnet50"
    assert not logs.exists()


def test_make_targets_name_the_voc_configs():
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target, name in [("voc-resnet50", "resnet50"), ("voc-resnet50-aug", "resnet50_aug"),
                         ("voc-seg-resnet50", "seg_resnet50"), ("voc-seg-resnet50-aug", "seg_resnet50_aug")]:
        assert f"$(eval $(call experiment,{target},configs/voc/{name}.yaml))" in makefile


def test_a_multiclass_loss_on_voc_is_refused_with_the_fix():
    from kerasclf.config import load_config
    from kerasclf.errors import ConfigError

    with pytest.raises(ConfigError, match="loss.name=binary_crossentropy"):
        load_config(overrides=["data.source=voc2012"])
    with pytest.raises(ConfigError, match="loss.name=segmentation_crossentropy"):
        load_config(overrides=["data.source=voc2012-seg"])
