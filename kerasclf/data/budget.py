"""One memory budget for every stage that holds images, checked before any of it is taken.

`memory_plan` adds up, for a data set's image count and size (known from the config and the
file listing, before anything is decoded), the bytes each stage of a run holds at once:

  decoding          the decoded array, the batch being copied into it, the images in flight
                    at their JPEG draft size, a fixed part (tf.data buffers, thread stacks,
                    allocator arenas); the allocator keeps the last two for the process, so
                    every later stage counts them too;
  splits            carving val/test (data.val_fraction, data.test_fraction, limit_per_class,
                    data.classes) copies every image once into its split while the decoded
                    array is still held (kerasclf.data.__init__ takes each split once);
                    Array sources resized to data.image_size hold their arrays beside the
                    resized splits instead;
  statistics        the decoded images plus a bounded working chunk (splits.channel_sums);
  resident table    train.data_on_device: the splits, the splits converted by the backend
                    and, on a CPU backend, the table they are concatenated into (the
                    "device" variable, which is host memory there);
  streaming         data.stream: a few prefetched batches and the statistics' chunk, whatever
                    the folder's size (the data report always reads files this way).

The stages run one after another, so the budget is the largest of them (each one the sum of
what it holds at once). What is not counted is bounded instead: evaluation galleries decode
only the images they show, and t-SNE and the projector use at most --tsne-points points.

`check_memory` refuses, with one paragraph naming the stage that dominates, when that peak
is over BUDGET_SHARE of the memory available now. The decoding guard (sources/folder.py and
build_dataset), the data report and training's prepare step all reach it through
build_dataset.
"""

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import psutil

from kerasclf.data.images import BATCH_BYTES, image_size_of
from kerasclf.data.splits import STATS_CHUNK_BYTES
from kerasclf.errors import DataError

# Share of the available memory the data stages may take: the rest is for the framework,
# the model and its optimizer state, which the budget does not count.
BUDGET_SHARE = 0.8
STATS_WORKING_FACTOR = 5  # the statistics hold a uint8 chunk and its uint32 copy
# tf.data's parallel decode holds this many images in flight (AUTOTUNE on a few cores), each
# decoded at the JPEG draft size or, for other formats, at full size, plus a float32 copy while resizing.
IN_FLIGHT = 16
# tf.data buffers, thread stacks and allocator arenas: with the images in flight, 120-180 MiB
# measured on 2 cores, and still held after decoding (tests/test_memory_budget.py)
FIXED_BYTES = 192 * 2**20
# Batches a streamed pipeline holds at once (tf.data prefetch and the batch being assembled).
STREAM_BATCHES = 4
# Above this many bytes of uint8 images, train.data_on_device=auto keeps data on the host.
RESIDENT_LIMIT_BYTES = 4 * 2**30
LARGEST_SAMPLE = 32  # files whose headers give the in-flight images' size
log = logging.getLogger("kerasclf")


@dataclass
class Training:
    """What training will do with the data, as far as memory goes (from the run's config:
    kerasclf.training.feeding.memory_intent). resident: True, False, or "auto" (resident when
    the table is at most RESIDENT_LIMIT_BYTES); on_host: the "device" copy is host memory (CPU backend)."""

    resident: object = False
    on_host: bool = True
    ruled_out: bool = False  # "auto" and the table would not fit: batches are fed from the host (check_data)


@dataclass
class Plan:
    """Stages in the order they run, each {part: bytes} of what it holds at once."""

    images: int  # bytes of the decoded images at the target size
    stages: dict = field(default_factory=dict)

    def total(self, stage):
        return sum(self.stages[stage].values())

    @property
    def dominant(self):
        return max(self.stages, key=self.total)

    @property
    def peak(self):
        return self.total(self.dominant) if self.stages else 0


def decoded_size(num_images, image_size):
    height, width = (int(s) for s in image_size)
    return int(num_images) * height * width * 3


def in_flight_bytes(image_size, largest):
    """Images decoding at once: a JPEG decodes at the largest 1/r (r = 8, 4, 2, 1) still at least
    the target size, as uint8 and again as float32 while resized."""
    if largest is None:
        return 0
    height, width = (int(s) for s in image_size)
    full_h, full_w = (int(s) for s in largest)
    r = next(r for r in (8, 4, 2, 1) if r == 1 or (full_h // r >= height and full_w // r >= width))
    return IN_FLIGHT * (full_h // r) * (full_w // r) * (3 + 4 * 3)


def decode_peak_bytes(num_images, image_size, largest=None):
    """Decoding's peak alone (the "decoding" stage of memory_plan)."""
    return sum(memory_plan(num_images, image_size, largest=largest).stages["decoding"].values())


def memory_plan(num_images, image_size, *, largest=None, decode=True, carve=False, streamed=False,
                batch_size=None, training=None, source_bytes=0):
    """The Plan of a data set of `num_images` images fitted to `image_size` (height, width).

    largest: (height, width) of the largest files (the in-flight images); decode: the images
    are files to decode (False: arrays a source already holds); carve: splits are carved from
    the decoded array; streamed: files stay on disk (data.stream, the data report);
    training: a Training, or None when nothing trains (evaluate, data report); source_bytes:
    arrays a source holds at another size (resized to data.image_size), held until the data set is built."""
    images = decoded_size(num_images, image_size)
    stats = STATS_WORKING_FACTOR * min(STATS_CHUNK_BYTES, images)  # a chunk is at most all the images
    plan = Plan(images)
    if streamed:
        batch = decoded_size(min(int(num_images), int(batch_size or num_images)), image_size)
        plan.stages["streaming"] = {"prefetched batches": min(STREAM_BATCHES * batch, images), "statistics chunk": stats,
                                    "images in flight": in_flight_bytes(image_size, largest), "fixed": FIXED_BYTES}
        return plan
    source = {"source arrays": int(source_bytes)} if source_bytes else {}  # freed once the data set is built
    kept = {}
    if decode:
        in_flight = in_flight_bytes(image_size, largest)
        plan.stages["decoding"] = {"decoded images": images, "batch being copied": 2 * min(BATCH_BYTES, images),
                                   "images in flight": in_flight, "fixed": FIXED_BYTES}
        # the allocator keeps most of decoding's working memory for the rest of the process
        # (measured: RSS stays near decoding's peak less the batch), so every later stage has it too
        kept = {"kept by decoding's allocator": in_flight + FIXED_BYTES}
    if source_bytes:  # the splits are taken and resized from the source's arrays at once
        plan.stages["splits"] = {**source, "splits at data.image_size": images}
    elif carve:
        plan.stages["splits"] = {**kept, "decoded images": images, "carved splits": images}
    plan.stages["statistics"] = {**kept, "decoded images": images, "statistics chunk": stats}
    if training is not None and _resident(training, images):
        # the backend converts the splits and concatenates them into the variable's value
        # (kerasclf.training.resident.TakeRows): on a CPU backend that value is host memory too
        plan.stages["device-resident table"] = {**kept, "splits": images, "splits converted by the backend": images,
                                                "table in host memory": images if training.on_host else 0}
    return plan


def _resident(training, images):
    if training.resident == "auto":
        return images <= RESIDENT_LIMIT_BYTES
    return bool(training.resident)


def largest_size(paths, seed=0):
    """(height, width) of the largest of a seeded sample of LARGEST_SAMPLE files (headers only),
    or None when none can be read."""
    paths = list(paths)
    if len(paths) > LARGEST_SAMPLE:
        rng = np.random.default_rng(seed)
        paths = [paths[i] for i in rng.choice(len(paths), LARGEST_SAMPLE, replace=False)]
    sizes = []
    for path in paths:
        try:
            sizes.append(image_size_of(path))
        except Exception:  # corrupt or not an image: the decode skips it later, with a warning
            continue
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def carves(data_cfg, split_names):
    """Whether build_dataset copies images into new splits: a split carved by its fraction, or
    images chosen by data.limit_per_class or data.classes."""
    if data_cfg is None:
        return False
    missing = [name for name in ("val", "test") if name not in split_names]
    return bool(any(getattr(data_cfg, f"{name}_fraction") > 0 for name in missing)
                or data_cfg.limit_per_class or data_cfg.classes is not None)


def check_data(data_cfg, what, num_images, image_size, split_names, *, paths=None, decode=True, streamed=False,
               source_bytes=0, training=None, seed=0, batch_size=None):
    """check_memory of the plan of a run's data (its config, the splits the source has, the
    files when there are any); what every path that builds a data set calls before it decodes.
    data_cfg None: a source loaded on its own (nothing carved, no batch size)."""
    largest = largest_size(paths, seed) if paths is not None and len(paths) else None

    def plan_for(intent):
        return memory_plan(num_images, image_size, largest=largest, decode=decode, carve=carves(data_cfg, split_names),
                           streamed=streamed, batch_size=batch_size or getattr(data_cfg, "batch_size", None),
                           training=intent, source_bytes=source_bytes)

    plan = plan_for(training)
    stage = "device-resident table"
    if (training is not None and training.resident == "auto" and stage in plan.stages
            and plan.peak > BUDGET_SHARE * psutil.virtual_memory().available):
        # train.data_on_device=auto chooses: feeding batches from the host needs no second copy
        training.ruled_out = True
        log.info("train.data_on_device=auto: the device-resident table would take the run to %s of memory, over "
                 "%.0f%% of what is available; batches are fed from the host instead.", _gb(plan.total(stage)),
                 100 * BUDGET_SHARE)
        plan = plan_for(Training(False))
    return check_memory(plan, num_images, image_size, what)


REMEDIES = {
    "decoding": "set a smaller data.image_size{example}, set data.stream=true to read the files from disk "
                "every epoch instead, or use fewer images (data.limit_per_class)",
    "splits": "set a smaller data.image_size{example}, give the splits their own folders (train/, val/, test/: "
              "nothing is carved), set data.stream=true, or use fewer images (data.limit_per_class)",
    "statistics": "set a smaller data.image_size{example}, or set data.stream=true",
    "device-resident table": "set train.data_on_device=false (batches are then fed from the host, without a "
                             "second copy), or a smaller data.image_size{example}",
    "streaming": "set a smaller data.batch_size or data.image_size{example}",
}


def check_memory(plan, num_images, image_size, what):
    """Refuse (DataError) when the plan's peak is over BUDGET_SHARE of the available memory,
    naming the stage that dominates and what to set. Returns the peak in bytes."""
    available = psutil.virtual_memory().available
    peak = plan.peak
    if peak <= BUDGET_SHARE * available:
        return peak
    stage = plan.dominant
    height, width = (int(s) for s in image_size)
    parts = ", ".join(f"{name} {_gb(n)}" for name, n in plan.stages[stage].items() if n)
    smaller = (224, 224) if height * width > 224 * 224 else (max(1, height // 2), max(1, width // 2))
    scaled = memory_plan(num_images, smaller, decode="decoding" in plan.stages, carve="splits" in plan.stages,
                         streamed="streaming" in plan.stages)
    example = f" (e.g. [{smaller[0]}, {smaller[1]}]: {num_images:,} images take {_gb(scaled.images)} decoded)"
    others = ", ".join(f"{name} {_gb(plan.total(name))}" for name in plan.stages if name != stage)
    raise DataError(
        f"{what}: {num_images:,} images at {height}x{width} ({_gb(plan.images)} decoded) need about {_gb(peak)} "
        f"of memory at the {stage} stage ({parts}), more than {BUDGET_SHARE:.0%} of the {_gb(available)} "
        f"available now{f'; the other stages: {others}' if others else ''}. To fit, "
        + REMEDIES[stage].format(example=example) + "."
    )


def _gb(n):
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{math.ceil(n / 2**20)} MiB" if n >= 2**20 else f"{math.ceil(n / 2**10)} KiB"
