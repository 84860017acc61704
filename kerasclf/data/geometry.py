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


def fit_pil(image, size, policy="crop"):
    """An open PIL image -> uint8 (H, W, 3) numpy array at size=(height, width).

    Call on a freshly opened file: a JPEG is then decoded at reduced size (draft)."""
    dst_h, dst_w = size
    src_w, src_h = image.size
    new_h, new_w, top, left = fit_geometry(src_h, src_w, dst_h, dst_w, policy)
    if image.format == "JPEG" and (new_h, new_w) != (src_h, src_w):
        image.draft(None, (new_w, new_h))  # the largest of 1/8, 1/4, 1/2 that stays >= new size
    image = image.convert("RGB")
    if image.size != (new_w, new_h):
        image = image.resize((new_w, new_h), Image.BILINEAR)
    array = np.asarray(image, dtype=np.uint8)
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


# --- TensorFlow (graph ops, for tf.data's parallel map) ---------------------------------------


def read_image_tf(path, size, policy="crop"):
    """TensorFlow ops: one image file -> uint8 (H, W, 3) at size=(height, width), as fit_pil."""
    import tensorflow as tf  # lazy: TensorFlow is optional (JAX-only installs)

    dst_h, dst_w = (int(s) for s in size)
    data = tf.io.read_file(path)

    def geometry(src_h, src_w):
        return _fit_geometry_tf(src_h, src_w, dst_h, dst_w, policy)

    def decode_jpeg():
        shape = tf.io.extract_jpeg_shape(data)  # header only
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

    image = tf.cond(
        tf.io.is_jpeg(data),
        decode_jpeg,
        lambda: tf.io.decode_image(data, channels=3, expand_animations=False),
    )
    image.set_shape((None, None, 3))
    # Geometry from the file's full size, as in fit_pil (a JPEG decoded at 1/r keeps it).
    full = tf.cond(
        tf.io.is_jpeg(data), lambda: tf.io.extract_jpeg_shape(data)[:2], lambda: tf.shape(image)[:2]
    )
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
