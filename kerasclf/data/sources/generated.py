"""Generated multi-label and segmentation sets: learning checks that need no download.

- `shapes-seg` (segmentation): discs, squares and triangles of random colours and sizes on
  textured backgrounds (noise, stripes, checks), 64x64; the class of a pixel is the shape
  kind (0 = background), and a 2-pixel band along every shape's outline is 255 ("void",
  as VOC marks object borders), which the loss and the metrics ignore.
- `mosaic` (multilabel): 2x2 mosaics of the images of a multiclass set (`data.mosaic_of`,
  e.g. folder:/path/to/cifar10/train); each of the 4 tiles holds an image or is left as
  grey noise, so a mosaic carries 1 to 4 labels (the classes of its tiles). Train and test
  mosaics are made of disjoint tile images.
"""

from dataclasses import replace

import numpy as np

from kerasclf.data import build_dataset
from kerasclf.data.registry import RawDataset, register_dataset
from kerasclf.data.splits import Split
from kerasclf.errors import DataError

SHAPES = ("background", "disc", "square", "triangle")
IGNORE = 255
SHAPES_SIZE, SHAPES_TRAIN, SHAPES_TEST = 64, 1000, 200


def _texture(rng, size):
    yy, xx = np.mgrid[:size, :size]
    kind = rng.integers(3)
    base = rng.integers(40, 200, 3)
    if kind == 0:  # noise
        image = base + rng.normal(0, 25, (size, size, 3))
    elif kind == 1:  # stripes of a random period and direction
        period, angle = rng.integers(4, 12), rng.uniform(0, np.pi)
        wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        image = base + 40 * wave[..., None] * rng.uniform(0.5, 1, 3)
    else:  # checks
        cell = rng.integers(4, 10)
        image = base + 35 * (((yy // cell + xx // cell) % 2) * 2 - 1)[..., None] * rng.uniform(0.5, 1, 3)
    return image + rng.normal(0, 6, (size, size, 3))


def _shape_mask(kind, size, rng):
    """Boolean (size, size) mask of one shape of `kind` (1 disc, 2 square, 3 triangle)."""
    yy, xx = np.mgrid[:size, :size]
    radius = rng.uniform(0.12, 0.24) * size
    cy, cx = rng.uniform(radius, size - radius, 2)
    if kind == 1:
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2
    if kind == 2:
        return (np.abs(yy - cy) <= radius * 0.85) & (np.abs(xx - cx) <= radius * 0.85)
    # an upward triangle: below its apex, inside both sloped edges
    top, bottom = cy - radius, cy + radius * 0.8
    half = (yy - top) / (bottom - top) * radius
    return (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)


def _border(mask, width=1):
    """Pixels within `width` of the outline of a boolean mask (inside or outside)."""
    grown, shrunk = mask.copy(), mask.copy()
    for _ in range(width):
        padded = np.pad(grown, 1)
        grown = padded[1:-1, 1:-1] | padded[:-2, 1:-1] | padded[2:, 1:-1] | padded[1:-1, :-2] | padded[1:-1, 2:]
        padded = np.pad(shrunk, 1, constant_values=True)
        shrunk = padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return grown & ~shrunk


def make_shapes(n, size=SHAPES_SIZE, seed=0, max_shapes=3):
    """Split of n images (uint8) and masks (uint8, 0..3 and 255), each with 1..max_shapes shapes."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, size, size, 3), np.uint8)
    y = np.empty((n, size, size), np.uint8)
    for i in range(n):
        image, mask = _texture(rng, size), np.zeros((size, size), np.uint8)
        void = np.zeros((size, size), bool)
        for _ in range(rng.integers(1, max_shapes + 1)):
            kind = int(rng.integers(1, len(SHAPES)))
            shape = _shape_mask(kind, size, rng)
            colour = rng.integers(0, 256, 3)
            image[shape] = colour + rng.normal(0, 8, (int(shape.sum()), 3))
            mask[shape] = kind
            void &= ~shape  # a shape drawn over an older border covers it...
            void |= _border(shape)  # ...and brings its own
        mask[void] = IGNORE
        x[i] = np.clip(image, 0, 255).astype(np.uint8)
        y[i] = mask
    return Split(x, y)


@register_dataset("shapes-seg", task="segmentation",
                  description="generated: discs/squares/triangles on textures, 64x64, 3 classes + background, 255 borders")
def shapes_seg(cfg, cache_dir):
    return RawDataset(
        {"train": make_shapes(SHAPES_TRAIN, seed=1), "test": make_shapes(SHAPES_TEST, seed=2)}, list(SHAPES)
    )


def make_mosaics(tiles, labels, num_classes, n, seed=0, empty_rate=0.25):
    """n 2x2 mosaics of `tiles` (N, h, w, 3): uint8 (n, 2h, 2w, 3) and multi-hot (n, C).

    Each tile slot is left empty (grey noise) with probability `empty_rate`, but never all
    four; every tile image is used at most once while enough remain."""
    rng = np.random.default_rng(seed)
    h, w = tiles.shape[1:3]
    x = np.empty((n, 2 * h, 2 * w, 3), np.uint8)
    y = np.zeros((n, num_classes), np.float32)
    order, next_tile = rng.permutation(len(tiles)), 0
    for i in range(n):
        filled = rng.random(4) >= empty_rate
        if not filled.any():
            filled[rng.integers(4)] = True
        for slot in range(4):
            r, c = divmod(slot, 2)
            if filled[slot]:
                if next_tile == len(order):
                    order, next_tile = rng.permutation(len(tiles)), 0
                t = order[next_tile]
                next_tile += 1
                x[i, r * h:(r + 1) * h, c * w:(c + 1) * w] = tiles[t]
                y[i, labels[t]] = 1.0
            else:
                x[i, r * h:(r + 1) * h, c * w:(c + 1) * w] = rng.integers(100, 156, (h, w, 3), dtype=np.uint8)
    return x, y


@register_dataset("mosaic", task="multilabel",
                  description="generated: 2x2 mosaics of a multiclass set's images (data.mosaic_of), 1-4 labels each",
                  options={
                      "mosaic_of": ("", "the multiclass data whose images become the tiles: folder:/path, cifar10..."),
                      "mosaic_tile_size": (32, "each tile's side in pixels (a mosaic is twice that)"),
                      "mosaic_count": (2000, "training mosaics; the test split gets a quarter as many"),
                  })
def mosaic(cfg, cache_dir):
    mosaic_of = cfg.options.get("mosaic_of", "")
    tile, count = int(cfg.options.get("mosaic_tile_size", 32)), int(cfg.options.get("mosaic_count", 2000))
    if tile < 1 or count < 4:
        raise DataError(f"data.mosaic_tile_size must be >= 1 and data.mosaic_count >= 4; got {tile} and {count}.")
    if not mosaic_of:
        raise DataError(
            "data.source=mosaic needs data.mosaic_of: the multiclass data whose images become the tiles, "
            "for example folder:/path/to/cifar10/train (one folder of JPEGs per class)."
        )
    tiles_cfg = replace(cfg, source=mosaic_of, image_size=[tile, tile], val_fraction=0.0, test_fraction=0.0,
                        limit_per_class=None, stream=False, options={}, classes=cfg.classes)
    tiles = build_dataset(tiles_cfg)
    pool = tiles.train if tiles.test is None else Split(
        np.concatenate([tiles.train.x, tiles.test.x]), np.concatenate([tiles.train.y, tiles.test.y]))
    # disjoint tile images for train and test mosaics: a test mosaic shows no image seen in training
    order = np.random.default_rng(cfg.split_seed or 0).permutation(len(pool))
    n_train, n_test = count, max(1, count // 4)
    cut = int(len(pool) * n_train / (n_train + n_test))
    train_tiles, test_tiles = order[:cut], order[cut:]
    num_classes = len(tiles.info.class_names)
    x_train, y_train = make_mosaics(pool.x[train_tiles], pool.y[train_tiles], num_classes, n_train, seed=1)
    x_test, y_test = make_mosaics(pool.x[test_tiles], pool.y[test_tiles], num_classes, n_test, seed=2)
    return RawDataset({"train": Split(x_train, y_train), "test": Split(x_test, y_test)}, list(tiles.info.class_names),
                      notes={"mosaic_of": mosaic_of})
