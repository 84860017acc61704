"""The size images are decoded to when `data.image_size` is not set, and whether they fit in memory.

The rule (stated in a message whenever it is used):
  the median height and the median width of the folder's training images, read from the
  files' headers (nothing decoded; at most SAMPLE files, a seeded random sample of larger
  folders), then scaled down, aspect kept, until the longer side is at most MAX_SIDE.
One odd file (a 4000x3000 photo among thumbnails) cannot move a median, and the cap keeps a
folder of camera photos from becoming 12-megapixel training inputs. Set `data.image_size`
to choose the size yourself.
"""

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil

from kerasclf.data.images import image_size_of
from kerasclf.data.splits import STATS_CHUNK_BYTES
from kerasclf.errors import DataError

SAMPLE = 5000
MAX_SIDE = 512
STATS_WORKING_FACTOR = 5  # the statistics hold a uint8 chunk and its uint32 copy
log = logging.getLogger("kerasclf")


def _header_size(path):
    try:
        return image_size_of(path)
    except Exception:  # corrupt or not an image: the decode skips it later, with a warning
        return None


def derive_image_size(paths, where, seed=0):
    """(height, width) by the module's rule, with a log message that says how it was chosen."""
    chosen = list(paths)
    if len(chosen) > SAMPLE:
        rng = np.random.default_rng(seed)
        chosen = [chosen[i] for i in sorted(rng.choice(len(chosen), SAMPLE, replace=False))]
    with ThreadPoolExecutor(4) as pool:
        sizes = [s for s in pool.map(_header_size, chosen) if s is not None]
    if not sizes:
        raise DataError(
            f"None of the {len(chosen)} image files under {where!r} could be read "
            f"(for example {chosen[0]!r}); they are corrupt or not images."
        )
    heights, widths = np.array(sizes).T
    height, width = int(round(np.median(heights))), int(round(np.median(widths)))
    capped = ""
    if max(height, width) > MAX_SIDE:
        scale = MAX_SIDE / max(height, width)
        height, width = max(1, round(height * scale)), max(1, round(width * scale))
        capped = f", scaled down to at most {MAX_SIDE} pixels on the longer side"
    distinct = len(set(sizes))
    spread = "all images have this size" if distinct == 1 else f"{distinct} different sizes seen"
    sampled = f"{len(sizes)} images" if len(paths) <= SAMPLE else f"a random sample of {len(sizes)} of {len(paths)} images"
    log.info(
        "data.image_size is not set: using [%d, %d] (height, width), the median size of %s%s (%s); "
        "images are fitted to it by data.resize. Set data.image_size: [H, W] to choose another.",
        height, width, sampled, capped, spread,
    )
    return height, width


# tf.data's parallel decode holds this many images in flight (AUTOTUNE on a few cores), each
# decoded at the JPEG draft size or, for other formats, at full size, plus a float32 copy while resizing.
IN_FLIGHT = 16
# tf.data buffers, thread stacks and allocator arenas, the batch being concatenated, the
# statistics' chunk: about 170 MiB measured on 2 cores (tests/test_memory_budget.py)
FIXED_BYTES = 192 * 2**20


def decode_peak_bytes(num_images, image_size, largest=None):
    """The memory decoding into one array may take at its peak: the array about twice (batches
    are concatenated), the images in flight at their largest decoded size, and a fixed part.
    check_fits_in_memory guards decoding with this rule's main term; the test of peak RSS on
    large generated photos (tests/test_memory_budget.py) holds the whole of it against measurement."""
    height, width = (int(s) for s in image_size)
    need = 2 * int(num_images) * height * width * 3
    if largest is not None:  # a JPEG decodes at the largest 1/r (r = 8, 4, 2, 1) still >= the target
        full_h, full_w = (int(s) for s in largest)
        r = next(r for r in (8, 4, 2, 1) if r == 1 or (full_h // r >= height and full_w // r >= width))
        need += IN_FLIGHT * (full_h // r) * (full_w // r) * (3 + 4 * 3)  # uint8 decode + float32 resize
    return need + FIXED_BYTES


def check_fits_in_memory(num_images, image_size, what):
    """Refuse before decoding when the decoded images would take over half the available memory
    (the in-memory path holds them about twice while assembling the array). Returns the bytes
    counted: the decoded images plus the per-channel statistics' working memory, which is
    bounded (a chunk at a time: kerasclf.data.splits.channel_sums), not another copy."""
    height, width = image_size
    images = int(num_images) * int(height) * int(width) * 3
    need = images + STATS_WORKING_FACTOR * min(STATS_CHUNK_BYTES, images)  # a chunk is at most all the images
    available = psutil.virtual_memory().available
    if need > available / 2:
        raise DataError(
            f"{what}: decoding {num_images:,} images at {height}x{width} needs {_gb(need)} of memory "
            f"({num_images:,} x {height} x {width} x 3 bytes, and about twice that while loading), but only "
            f"{_gb(available)} is available. Set a smaller data.image_size (e.g. [224, 224]: "
            f"{_gb(int(num_images) * 224 * 224 * 3)}), or use fewer images."
        )
    return need


def _gb(n):
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 / 10 else f"{math.ceil(n / 2**20)} MiB"
