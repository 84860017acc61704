"""How an image of any size becomes `data.image_size`: the resize policy (`data.resize`),
computed once here and applied identically by PIL and by TensorFlow ops.

  crop    (default) scale so the image covers the target (short side fits), then cut the
          centre: aspect kept, edges lost (timm/torchvision's Resize + CenterCrop);
  pad     scale so the whole image fits inside the target, then pad the rest with black
          around the centre: aspect kept, nothing lost (letterbox);
  stretch resize to the target exactly: aspect distorted (Keras's
          image_dataset_from_directory default).

JPEGs are decoded at reduced size when the target is much smaller: libjpeg's DCT scaling
by 1/2, 1/4 or 1/8 (PIL's `Image.draft`, `tf.io.decode_jpeg(ratio=...)`), never below the
size the resize needs, so a 4000x3000 photo for a 224x224 input decodes as 500x375 rather
than as 36 MB of pixels. Both paths choose the same ratio and the same geometry; the
remaining differences are the resampling kernels' rounding (a few grey levels).
"""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

POLICIES = ("crop", "pad", "stretch")
_JPEG_RATIOS = (8, 4, 2, 1)


def fit_geometry(src_h, src_w, dst_h, dst_w, policy="crop"):
    """(resize_h, resize_w, top, left): resize to (resize_h, resize_w), then for `crop` cut a
    dst window at (top, left) of it; for `pad` put it at (top, left) of a black dst canvas."""
    if policy == "stretch":
        return dst_h, dst_w, 0, 0
    scale_h, scale_w = dst_h / src_h, dst_w / src_w
    if policy == "crop":
        if scale_h >= scale_w:
            new_h, new_w = dst_h, max(dst_w, round(src_w * scale_h))
        else:
            new_h, new_w = max(dst_h, round(src_h * scale_w)), dst_w
        return new_h, new_w, (new_h - dst_h) // 2, (new_w - dst_w) // 2
    if policy == "pad":
        if scale_h <= scale_w:
            new_h, new_w = dst_h, min(dst_w, max(1, round(src_w * scale_h)))
        else:
            new_h, new_w = min(dst_h, max(1, round(src_h * scale_w))), dst_w
        return new_h, new_w, (dst_h - new_h) // 2, (dst_w - new_w) // 2
    raise ValueError(f"unknown resize policy {policy!r}; one of {POLICIES}")


# --- PIL -------------------------------------------------------------------------------------


# EXIF orientation (tag 0x0112) -> the PIL transpose that shows the image upright (as
# PIL.ImageOps.exif_transpose); 5-8 swap height and width.
ORIENTATION_TAG = 0x0112
_PIL_TRANSPOSE = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE",
                  6: "ROTATE_270", 7: "TRANSVERSE", 8: "ROTATE_90"}


def orientation_of(image):
    """The EXIF orientation of an open PIL image (1: as stored), read from its header."""
    try:
        value = int(image.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # a damaged EXIF block: the image as stored
        return 1
    return value if value in range(1, 9) else 1


def to_rgb_array(image):
    """An open PIL image in any mode -> uint8 (H, W, 3), as TensorFlow's decoders give it.

    convert("RGB") clips 16- and 32-bit greys to 255 (a 16-bit PNG turns white); those keep
    their high byte instead (v >> 8), which is what tf.io.decode_png does for 8-bit output.
    Alpha is dropped (the stored colour), as TensorFlow does with channels=3."""

    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        grey = (np.clip(np.asarray(image, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    if image.mode == "F":  # float greys (TIFF-style): taken as 0..255
        grey = np.clip(np.round(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=-1)
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def fit_pil(image, size, policy="crop"):
    """An open PIL image -> uint8 (H, W, 3) numpy array at size=(height, width), upright by its
    EXIF orientation (phone photos are stored sideways with a tag that says so).

    Call on a freshly opened file: a JPEG is then decoded at reduced size (draft)."""
    dst_h, dst_w = size
    orientation = orientation_of(image)
    src_w, src_h = image.size
    if orientation >= 5:
        src_w, src_h = src_h, src_w
    new_h, new_w, top, left = fit_geometry(src_h, src_w, dst_h, dst_w, policy)
    if image.format == "JPEG" and (new_h, new_w) != (src_h, src_w):
        # the largest of 1/8, 1/4, 1/2 that stays >= new size (asked in the file's own orientation)
        image.draft(None, (new_h, new_w) if orientation >= 5 else (new_w, new_h))
    if orientation != 1:
        image = image.transpose(getattr(Image.Transpose, _PIL_TRANSPOSE[orientation]))
    array = to_rgb_array(image)
    if array.shape[:2] != (new_h, new_w):
        array = np.asarray(Image.fromarray(array).resize((new_w, new_h), Image.BILINEAR), dtype=np.uint8)
    if policy == "crop":
        return np.ascontiguousarray(array[top:top + dst_h, left:left + dst_w])
    if policy == "pad":
        canvas = np.zeros((dst_h, dst_w, 3), np.uint8)
        canvas[top:top + new_h, left:left + new_w] = array
        return canvas
    return array


def fit_array(array, size, policy="crop"):
    """The same for a uint8 (H, W, C) array already in memory (built-in data sets)."""
    channels = array.shape[-1]
    image = Image.fromarray(array.squeeze(-1) if channels == 1 else array)
    out = fit_pil(image, size, policy)
    return out[..., :1] if channels == 1 else out


VOID = 255  # the "ignore" label of segmentation masks (Pascal VOC's void)


def fit_mask(mask, size, policy="crop"):
    """A (H, W) class-index mask fitted to size=(height, width) with the geometry images get (nearest; pad = 255)."""

    dst_h, dst_w = size
    new_h, new_w, top, left = fit_geometry(mask.shape[0], mask.shape[1], dst_h, dst_w, policy)
    resized = np.asarray(Image.fromarray(mask).resize((new_w, new_h), Image.NEAREST), np.uint8)
    if policy == "crop":
        return np.ascontiguousarray(resized[top:top + dst_h, left:left + dst_w])
    if policy == "pad":
        canvas = np.full((dst_h, dst_w), VOID, np.uint8)
        canvas[top:top + new_h, left:left + new_w] = resized
        return canvas
    return resized


# --- TensorFlow (graph ops, for tf.data's parallel map) ---------------------------------------


def exif_orientation(path):
    """The EXIF orientation of an image file (1 when it has none): the first 64 KiB are read,
    and PIL parses the header only when they hold an Exif block (most files have none)."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
        if b"Exif\x00\x00" not in head:
            return 1
        with Image.open(path) as image:
            return orientation_of(image)
    except Exception:  # unreadable: the decoder says so
        return 1


def exif_orientations(paths):
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(exif_orientation, paths, chunksize=256))


def _orient_tf(image, orientation):
    """EXIF orientation applied with TensorFlow ops, as fit_pil's transposes."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    transpose = lambda x: tf.transpose(x, [1, 0, 2])  # noqa: E731
    branches = [
        lambda: image,  # 0: unused
        lambda: image,  # 1
        lambda: tf.reverse(image, [1]),
        lambda: tf.reverse(image, [0, 1]),
        lambda: tf.reverse(image, [0]),
        lambda: transpose(image),
        lambda: tf.image.rot90(image, k=3),
        lambda: tf.reverse(transpose(image), [0, 1]),
        lambda: tf.image.rot90(image, k=1),
    ]
    return tf.switch_case(tf.cast(orientation, tf.int32), branches)


def _decode_bmp_palette_tf(data):
    """8-bit palette BMPs: tf.io.decode_bmp returns the palette *indices* as grey; look them up."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    header = tf.io.decode_raw(tf.strings.substr(data, 14, 4), tf.int32)[0]  # little-endian
    colours = tf.io.decode_raw(tf.strings.substr(data, 14 + header, 4 * 256), tf.uint8)
    palette = tf.reverse(tf.reshape(colours[: (tf.size(colours) // 4) * 4], (-1, 4))[:, :3], [1])  # BGRx -> RGB
    index = tf.io.decode_bmp(data, channels=0)[..., 0]
    return tf.gather(palette, tf.cast(index, tf.int32))


def _bmp_bits(data):
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    return tf.cast(tf.io.decode_raw(tf.strings.substr(data, 28, 2), tf.uint16)[0], tf.int32)


def read_image_tf(path, size, policy="crop", orientation=1):
    """TensorFlow ops: one image file -> uint8 (H, W, 3) at size=(height, width), as fit_pil.
    `orientation`: the file's EXIF orientation (exif_orientation), applied after decoding."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    dst_h, dst_w = (int(s) for s in size)
    data = tf.io.read_file(path)
    orientation = tf.convert_to_tensor(orientation, tf.int32)
    turned = orientation >= 5  # height and width swap

    def geometry(src_h, src_w):
        return _fit_geometry_tf(src_h, src_w, dst_h, dst_w, policy)

    def decode_jpeg():
        shape = tf.io.extract_jpeg_shape(data)  # header only
        shape = tf.where(turned, tf.reverse(shape[:2], [0]), shape[:2])
        new_h, new_w, _, _ = geometry(shape[0], shape[1])
        scale = tf.minimum(shape[1] // new_w, shape[0] // new_h)  # PIL's draft rule
        # the first ratio that fits; 1 always does (an image smaller than the target: scale 0)
        index = tf.argmax(tf.stack([tf.logical_or(scale >= r, r == 1) for r in _JPEG_RATIOS]))
        # JPEGs with the accurate integer IDCT, as PIL decodes them (decode_image's default
        # fast IDCT differs by about one grey level on average).
        branches = [
            (lambda r=r: tf.io.decode_jpeg(data, channels=3, ratio=r, dct_method="INTEGER_ACCURATE"))
            for r in _JPEG_RATIOS
        ]
        return tf.switch_case(tf.cast(index, tf.int32), branches)

    is_bmp = tf.strings.substr(data, 0, 2) == "BM"
    palette_bmp = tf.logical_and(is_bmp, tf.logical_and(tf.strings.length(data) > 30, _bmp_bits(data) == 8))
    image = tf.cond(
        tf.io.is_jpeg(data),
        decode_jpeg,
        lambda: tf.cond(palette_bmp, lambda: _decode_bmp_palette_tf(data),
                        lambda: tf.io.decode_image(data, channels=3, expand_animations=False)),
    )
    image.set_shape((None, None, 3))
    image = _orient_tf(image, orientation)
    # Geometry from the file's full size, as in fit_pil (a JPEG decoded at 1/r keeps it).
    full = tf.cond(
        tf.io.is_jpeg(data), lambda: tf.io.extract_jpeg_shape(data)[:2], lambda: tf.shape(image)[:2]
    )
    full = tf.where(tf.logical_and(tf.io.is_jpeg(data), turned), tf.reverse(full, [0]), full)
    new_h, new_w, top, left = geometry(full[0], full[1])

    def resize():
        # Antialiased bilinear, as PIL's BILINEAR resize downscales.
        resized = tf.image.resize(image, tf.stack([new_h, new_w]), method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    same = tf.reduce_all(tf.shape(image)[:2] == tf.stack([new_h, new_w]))
    image = tf.cond(same, lambda: image, resize)  # already that size: no resize
    if policy == "crop":
        image = image[top:top + dst_h, left:left + dst_w]
    elif policy == "pad":
        image = tf.pad(image, [[top, dst_h - new_h - top], [left, dst_w - new_w - left], [0, 0]])
    image = tf.ensure_shape(image, (dst_h, dst_w, 3))
    return image


def _fit_geometry_tf(src_h, src_w, dst_h, dst_w, policy):
    """fit_geometry in TensorFlow ops (float64 and round-half-even, as Python's round)."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    if policy == "stretch":
        return tf.constant(dst_h), tf.constant(dst_w), tf.constant(0), tf.constant(0)
    h, w = tf.cast(src_h, tf.float64), tf.cast(src_w, tf.float64)
    scale_h, scale_w = dst_h / h, dst_w / w
    scaled_w = tf.cast(tf.round(w * scale_h), tf.int32)
    scaled_h = tf.cast(tf.round(h * scale_w), tf.int32)
    if policy == "crop":
        by_height = scale_h >= scale_w
        new_h = tf.where(by_height, dst_h, tf.maximum(dst_h, scaled_h))
        new_w = tf.where(by_height, tf.maximum(dst_w, scaled_w), dst_w)
        return new_h, new_w, (new_h - dst_h) // 2, (new_w - dst_w) // 2
    if policy == "pad":
        by_height = scale_h <= scale_w
        new_h = tf.where(by_height, dst_h, tf.minimum(dst_h, tf.maximum(1, scaled_h)))
        new_w = tf.where(by_height, tf.minimum(dst_w, tf.maximum(1, scaled_w)), dst_w)
        return new_h, new_w, (dst_h - new_h) // 2, (dst_w - new_w) // 2
    raise ValueError(f"unknown resize policy {policy!r}; one of {POLICIES}")
