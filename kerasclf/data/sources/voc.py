"""Pascal VOC 2007 / 2012 from the official VOCdevkit layout: multi-label and segmentation.

Layout (what the official tar archives unpack to):

    VOCdevkit/VOC2012/Annotations/<id>.xml          objects: name, difficult, truncated, bndbox
    VOCdevkit/VOC2012/JPEGImages/<id>.jpg
    VOCdevkit/VOC2012/SegmentationClass/<id>.png    palette ("P") PNG: index = class, 255 = void
    VOCdevkit/VOC2012/ImageSets/Main/{train,val}.txt
    VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val}.txt

Two tasks read the same tree:
- `voc2012` / `voc2007` (multilabel): an image's label is a 20-class multi-hot vector built
  from its XML objects. `data.voc_difficult` says what an object marked `difficult` does:
  `exclude` (default, the VOC evaluation's rule: it sets no label), `include` (it counts).
  `data.voc_truncated` likewise for `truncated` objects (default `include`: a truncated
  object is still in the image).
- `voc2012-seg` / `voc2007-seg` (segmentation): per-pixel class indices 0..20 (0 =
  background) read from the palette PNG's *indices* (not its colours), 255 = "void" (object
  borders and hard regions), which the loss and every metric ignore.

Splits: the official `train` list is the training split (kerasclf carves its validation
split from it, data.val_fraction) and the official `val` list is the `test` split: VOC's
own test labels were never published (2012); VOC 2007's test archive, when present under
the same VOCdevkit, adds its test list instead.

The archives are downloaded once into the cache (data.data_dir / $KERASCLF_DATA) and
extracted there; an existing VOCdevkit in the cache is read without the network.
"""

import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from kerasclf.data.cache import fetch, readable_download
from kerasclf.data.geometry import fit_mask
from kerasclf.data.images import decode
from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
SEG_CLASSES = ("background", *CLASSES)
IGNORE = 255  # VOC's "void" label in SegmentationClass PNGs

# The official archives (host.robots.ox.ac.uk), with the md5 digests torchvision checks.
ARCHIVES = {
    "2012": [("http://host.robots.ox.ac.uk/pascal/VOC/voc2012/VOCtrainval_11-May-2012.tar",
              "6cd6e144f989b92b3379bac3b3de84fd")],
    "2007": [("http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtrainval_06-Nov-2007.tar",
              "c52e279531787c972589f7e41ab4ae64"),
             ("http://host.robots.ox.ac.uk/pascal/VOC/voc2007/VOCtest_06-Nov-2007.tar",
              "b6e924de25625d8de591ea690078ad9f")],
}


def voc_palette():
    """The VOC colour map: 256 RGB rows (index 255, void, is (224, 224, 192))."""
    palette = np.zeros((256, 3), np.uint8)
    for index in range(256):
        c, r, g, b = index, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette[index] = (r, g, b)
    return palette


def parse_annotation(path, difficult="exclude", truncated="include"):
    """The set of class indices an Annotations XML file labels the image with.

    difficult / truncated: "include" or "exclude" objects flagged that way."""
    root = ET.parse(path).getroot()
    labels = set()
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in CLASSES:
            raise ValueError(f"{path}: unknown object class {name!r}")
        if difficult == "exclude" and _flag(obj, "difficult"):
            continue
        if truncated == "exclude" and _flag(obj, "truncated"):
            continue
        labels.add(CLASSES.index(name))
    return labels


def _flag(obj, tag):
    return (obj.findtext(tag) or "0").strip() in ("1", "true")


def multi_hot(label_sets, num_classes=20):
    y = np.zeros((len(label_sets), num_classes), np.float32)
    for row, labels in enumerate(label_sets):
        y[row, sorted(labels)] = 1.0
    return y


def read_mask(path):
    """Class indices (H, W) uint8 of a SegmentationClass PNG (palette mode: the indices, not colours)."""

    with Image.open(path) as image:
        if image.mode != "P":
            raise ValueError(f"{path} is a {image.mode!r} PNG; VOC masks are palette ('P') PNGs of class indices")
        mask = np.asarray(image, dtype=np.uint8)
    bad = np.setdiff1d(np.unique(mask), [*range(len(SEG_CLASSES)), IGNORE])
    if bad.size:
        raise ValueError(f"{path} holds indices {bad.tolist()} outside 0..20 and 255")
    return mask


def find_root(cache_dir, year):
    """<cache>/VOCdevkit/VOC<year> when it holds the folders the loader reads, else None."""
    root = Path(cache_dir) / "VOCdevkit" / f"VOC{year}"
    return root if (root / "ImageSets").is_dir() and (root / "JPEGImages").is_dir() else None


def ensure_root(cache_dir, year):
    """The VOC<year> folder, downloading and extracting the official archives when it is absent."""
    root = find_root(cache_dir, year)
    if root is not None:
        return root
    for url, md5 in ARCHIVES[year]:
        name = url.rsplit("/", 1)[1]
        try:
            archive = fetch(url, cache_dir, name, md5=md5, what=f"Pascal VOC {year} ({name})")
        except DataError as exc:
            raise DataError(
                f"{exc} Pascal VOC {year} is read from {Path(cache_dir) / 'VOCdevkit' / f'VOC{year}'} "
                f"(Annotations/, JPEGImages/, ImageSets/, SegmentationClass/): unpack the official archive "
                f"{name} in {cache_dir} (it creates VOCdevkit/), or put the archive itself there."
            ) from None
        with readable_download(archive, url, f"Pascal VOC {year} archive", (tarfile.TarError, EOFError, OSError)):
            with tarfile.open(archive) as tar:
                tar.extractall(cache_dir, filter="data")
    root = find_root(cache_dir, year)
    if root is None:
        raise DataError(f"The Pascal VOC {year} archives in {cache_dir} did not unpack to VOCdevkit/VOC{year}.")
    return root


def read_ids(root, kind, split):
    """Image ids of ImageSets/<kind>/<split>.txt (kind: Main or Segmentation)."""
    path = root / "ImageSets" / kind / f"{split}.txt"
    if not path.is_file():
        return None
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _decode_images(root, ids, size, policy):
    return np.stack([decode(root / "JPEGImages" / f"{i}.jpg", size, policy) for i in ids])


def _list_splits(root, kind):
    """{train, test} -> ids: the official train and val lists (val is the test split here)."""
    out = {}
    for split, official in (("train", "train"), ("test", "val")):
        ids = read_ids(root, kind, official)
        if ids is None:
            raise DataError(f"{root / 'ImageSets' / kind / (official + '.txt')} is missing: the VOC tree is incomplete.")
        out[split] = ids
    return out


def load_multilabel(root, size, policy="crop", difficult="exclude", truncated="include"):
    splits = {}
    for split, ids in _list_splits(root, "Main").items():
        labels = [parse_annotation(root / "Annotations" / f"{i}.xml", difficult, truncated) for i in ids]
        splits[split] = Split(_decode_images(root, ids, size, policy), multi_hot(labels),
                              [str(root / "JPEGImages" / f"{i}.jpg") for i in ids])
    return RawDataset(splits, list(CLASSES))


def load_segmentation(root, size, policy="crop"):
    splits = {}
    for split, ids in _list_splits(root, "Segmentation").items():
        masks = np.stack([fit_mask(read_mask(root / "SegmentationClass" / f"{i}.png"), size, policy) for i in ids])
        splits[split] = Split(_decode_images(root, ids, size, policy), masks,
                              [str(root / "JPEGImages" / f"{i}.jpg") for i in ids])
    return RawDataset(splits, list(SEG_CLASSES))


def _size(cfg, name):
    if cfg.image_size is None:
        raise DataError(
            f"{name} images have many sizes: set data.image_size (for example [224, 224]) so they can be "
            "fitted to one (data.resize says how)."
        )
    return tuple(cfg.image_size)


def _load(cfg, cache_dir, year, task):
    name = f"voc{year}{'-seg' if task == 'segmentation' else ''}"
    root = ensure_root(cache_dir, year)
    try:
        if task == "segmentation":
            return load_segmentation(root, _size(cfg, name), cfg.resize)
        return load_multilabel(root, _size(cfg, name), cfg.resize, cfg.options.get("voc_difficult", "exclude"),
                               cfg.options.get("voc_truncated", "include"))
    except (OSError, ValueError, ET.ParseError) as exc:
        raise DataError(f"The Pascal VOC files in {root} are not readable ({type(exc).__name__}: {exc}).") from None


# Four registrations written out: config validation reads names and options from this source
# without importing it (kerasclf.registry.read_entries), so they must be literals.
# data.voc_difficult / data.voc_truncated (multi-label only): what a flagged object does.
@register_dataset(
    "voc2012", task="multilabel", description="Pascal VOC 2012, multi-label, 20 classes (downloads 2 GB once)",
    options={
        "voc_difficult": ("exclude", "objects flagged difficult: exclude (set no label; VOC's rule) or include"),
        "voc_truncated": ("include", "objects flagged truncated: include (default) or exclude"),
    },
    choices={"voc_difficult": ("exclude", "include"), "voc_truncated": ("include", "exclude")},
)
def voc2012(cfg, cache_dir):
    return _load(cfg, cache_dir, "2012", "multilabel")


@register_dataset(
    "voc2007", task="multilabel", description="Pascal VOC 2007, multi-label, 20 classes (downloads 900 MB once)",
    options={
        "voc_difficult": ("exclude", "objects flagged difficult: exclude (set no label; VOC's rule) or include"),
        "voc_truncated": ("include", "objects flagged truncated: include (default) or exclude"),
    },
    choices={"voc_difficult": ("exclude", "include"), "voc_truncated": ("include", "exclude")},
)
def voc2007(cfg, cache_dir):
    return _load(cfg, cache_dir, "2007", "multilabel")


@register_dataset("voc2012-seg", task="segmentation",
                  description="Pascal VOC 2012, per-pixel, 21 classes with background, 255 = void (downloads 2 GB once)")
def voc2012_seg(cfg, cache_dir):
    return _load(cfg, cache_dir, "2012", "segmentation")


@register_dataset("voc2007-seg", task="segmentation",
                  description="Pascal VOC 2007, per-pixel, 21 classes with background, 255 = void (downloads 900 MB once)")
def voc2007_seg(cfg, cache_dir):
    return _load(cfg, cache_dir, "2007", "segmentation")
