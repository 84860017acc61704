"""Sampling images at computed coordinates with `keras.ops` only (XLA-safe, any backend).

Pure functions, shared by the augmentation layers of kerasclf.layers.augment and usable on
their own. Every shape is static and each read is one gather on computed indices, so
nothing depends on Python values of tensors and XLA compiles them.
"""

from keras import ops


def static_hwc(shape, name):
    """(height, width, channels) of an NHWC `shape`; ValueError unless all three are static."""
    if len(shape) != 4 or any(d is None for d in shape[1:]):
        raise ValueError(
            f"{name} expects NHWC images with a static height, width and channel count, "
            f"got shape {tuple(shape)}."
        )
    return int(shape[1]), int(shape[2]), int(shape[3])


def gather_pixels(images, rows, cols):
    """out[b, i, j] = images[b, rows[b, i, j], cols[b, i, j]] (indices already in range).

    One `take` on the (B*H*W, C) view with flat indices: a single XLA gather, exact (no
    arithmetic on the pixel values), and any batch size, including a dynamic one.
    """
    height, width, channels = (int(d) for d in images.shape[1:])
    batch_offset = ops.cast(ops.cumsum(ops.ones_like(rows[:, 0, 0]), axis=0) - 1, "int32")
    flat_index = batch_offset[:, None, None] * (height * width) + rows * width + cols
    return ops.take(ops.reshape(images, (-1, channels)), flat_index, axis=0)


def resample(images, src_y, src_x, interpolation="bilinear", fill_value=0.0):
    """Sample `images` (B, H, W, C) at source coordinates `src_y`, `src_x` (B, Ho, Wo).

    Coordinates are in pixels with pixel centres at integers; points outside the image read
    `fill_value` (bilinear: each of the four neighbours outside contributes `fill_value`,
    so edges fade smoothly). Output (B, Ho, Wo, C) in the images' dtype.
    """
    height, width, _ = static_hwc(images.shape, "resample")
    dtype = images.dtype
    fill = ops.cast(fill_value, dtype)

    def read(iy, ix):
        valid = (iy >= 0) & (iy <= height - 1) & (ix >= 0) & (ix <= width - 1)
        values = gather_pixels(images, ops.clip(iy, 0, height - 1), ops.clip(ix, 0, width - 1))
        return ops.where(valid[..., None], values, fill)

    src_y = ops.cast(src_y, "float32")
    src_x = ops.cast(src_x, "float32")
    if interpolation == "nearest":
        return read(ops.cast(ops.floor(src_y + 0.5), "int32"), ops.cast(ops.floor(src_x + 0.5), "int32"))
    if interpolation != "bilinear":
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}.")
    y0f = ops.floor(src_y)
    x0f = ops.floor(src_x)
    wy = ops.cast((src_y - y0f)[..., None], dtype)
    wx = ops.cast((src_x - x0f)[..., None], dtype)
    y0 = ops.cast(y0f, "int32")
    x0 = ops.cast(x0f, "int32")
    one = ops.cast(1.0, dtype)
    top = read(y0, x0) * (one - wx) + read(y0, x0 + 1) * wx
    bottom = read(y0 + 1, x0) * (one - wx) + read(y0 + 1, x0 + 1) * wx
    return top * (one - wy) + bottom * wy


def affine_resample(images, matrix, shift, interpolation="bilinear", fill_value=0.0):
    """Apply one affine map per image, about the image centre.

    For output pixel p = (y, x): source = matrix @ (p - centre) + centre + shift.
    `matrix` is (B, 2, 2) in (y, x) order, `shift` (B, 2) in pixels. The identity matrix with
    a zero shift returns the images unchanged (bit for bit).
    """
    height, width, _ = static_hwc(images.shape, "affine_resample")
    matrix = ops.cast(matrix, "float32")
    shift = ops.cast(shift, "float32")
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    dy = ops.reshape(ops.arange(height, dtype="float32") - cy, (1, height, 1))
    dx = ops.reshape(ops.arange(width, dtype="float32") - cx, (1, 1, width))

    def coef(i, j):
        return matrix[:, i, j][:, None, None]

    src_y = coef(0, 0) * dy + coef(0, 1) * dx + (cy + shift[:, 0][:, None, None])
    src_x = coef(1, 0) * dy + coef(1, 1) * dx + (cx + shift[:, 1][:, None, None])
    return resample(images, src_y, src_x, interpolation, fill_value)


# Padding modes `pad_index` implements, named as numpy.pad names them.
PAD_MODES = ("reflect", "symmetric", "edge", "constant")


def pad_index(index, size, mode):
    """Map indices in [-pad, size - 1 + pad] onto the original axis as numpy.pad would."""
    if mode == "reflect":
        index = ops.where(index < 0, -index, index)
        return ops.where(index > size - 1, 2 * (size - 1) - index, index)
    if mode == "symmetric":
        index = ops.where(index < 0, -index - 1, index)
        return ops.where(index > size - 1, 2 * size - 1 - index, index)
    return ops.clip(index, 0, size - 1)  # edge; constant masks the outside separately
