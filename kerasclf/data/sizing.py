"""The size images are decoded to when `data.image_size` is not set (whether they then fit in
memory: kerasclf.data.budget).

The rule (stated in a message whenever it is used):
  the median height and the median width of the folder's training images, read from the
  files' headers (nothing decoded; at most SAMPLE files, a seeded random sample of larger
  folders), then scaled down, aspect kept, until the longer side is at most MAX_SIDE.
One odd file (a 4000x3000 photo among thumbnails) cannot move a median, and the cap keeps a
folder of camera photos from becoming 12-megapixel training inputs. Set `data.image_size`
to choose the size yourself.
"""

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from kerasclf.data.images import image_size_of
from kerasclf.errors import DataError

SAMPLE = 5000
MAX_SIDE = 512
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
