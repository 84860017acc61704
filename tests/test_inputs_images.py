"""Issue #8, image size: a stated size, a documented resize policy applied identically by the
tf.data and PIL decoders, JPEGs decoded at reduced size, memory checked before decoding."""

import os

import numpy as np
import pytest
from conftest import class_image, write_image

from kerasclf.config import DataConfig
from kerasclf.data import build_dataset
from kerasclf.data.geometry import fit_geometry
from kerasclf.data.images import _decode_files_pil, _decode_files_tf
from kerasclf.errors import DataError

GREEN, RED = (0, 200, 0), (200, 0, 0)


def data(source, **kwargs):
    kwargs.setdefault("val_fraction", 0.0)
    return DataConfig(source=source, **kwargs)


def banded(height, width):
    """Green outer quarters (left and right), red middle half: where a crop cuts shows."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = GREEN
    image[:, width // 4: width - width // 4] = RED
    return image


def decoders():
    return {
        "tf": lambda paths, size, policy: _decode_files_tf(paths, size, policy)[0],
        "pil": lambda paths, size, policy: _decode_files_pil(paths, size, policy, 2)[0],
    }


@pytest.mark.parametrize("decoder", ["tf", "pil"])
@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_crop_keeps_aspect_and_cuts_the_centre(tmp_path, decoder, ext):
    path = write_image(tmp_path / f"wide{ext}", banded(40, 80))
    (image,) = decoders()[decoder]([str(path)], (20, 20), "crop")
    # 40x80 -> 20x40 -> the centre 20x20 is the red middle half
    assert image.shape == (20, 20, 3)
    assert (image[..., 0].astype(int) - image[..., 1] > 100).all(), "a green edge survived the centre crop"


@pytest.mark.parametrize("decoder", ["tf", "pil"])
def test_pad_keeps_the_whole_image_and_pads_black(tmp_path, decoder):
    path = write_image(tmp_path / "wide.png", banded(40, 80))
    (image,) = decoders()[decoder]([str(path)], (20, 20), "pad")
    # 40x80 -> 10x20, centred: rows 0-4 and 15-19 black, both green edges kept
    assert (image[:5] == 0).all() and (image[15:] == 0).all()
    body = image[5:15]
    assert (body[:, 0, 1] > 150).all() and (body[:, -1, 1] > 150).all()  # both green edges kept
    assert (body[:, 10, 0] > 150).all()


@pytest.mark.parametrize("decoder", ["tf", "pil"])
def test_stretch_distorts_to_the_target(tmp_path, decoder):
    path = write_image(tmp_path / "wide.png", banded(40, 80))
    (image,) = decoders()[decoder]([str(path)], (20, 20), "stretch")
    assert (image[:, 0, 1] > 150).all() and (image[:, -1, 1] > 150).all()  # both edges squeezed in
    assert (image[:, 10, 0] > 150).all()


@pytest.mark.parametrize("policy", ["crop", "pad", "stretch"])
def test_tf_and_pil_give_the_same_geometry_for_every_shape(tmp_path, policy):
    # tall, wide, tiny (upscaled), large JPEG (reduced-size decode) and already-that-size images
    rng = np.random.default_rng(0)
    paths = []
    for i, (h, w) in enumerate([(90, 30), (30, 90), (7, 11), (1200, 1600), (48, 64)]):
        yy, xx = np.mgrid[0:h, 0:w]
        image = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)
        image[h // 3: h // 2, w // 3: w // 2] = rng.integers(0, 256, 3)
        for ext in (".jpg", ".png"):
            paths.append(str(write_image(tmp_path / f"{i}{ext}", image)))
    for size in [(48, 64), (33, 17)]:
        tf_images = decoders()["tf"](paths, size, policy)
        pil_images = decoders()["pil"](paths, size, policy)
        diff = np.abs(tf_images.astype(int) - pil_images.astype(int))
        assert diff.max() <= 2, (size, diff.reshape(len(paths), -1).max(1))


@pytest.mark.parametrize(
    "src, dst, policy, expected",
    [
        ((3000, 4000), (224, 224), "crop", (224, 299, 0, 37)),
        ((3000, 4000), (224, 224), "pad", (168, 224, 28, 0)),
        ((4000, 3000), (224, 224), "crop", (299, 224, 37, 0)),
        ((10, 10), (20, 40), "crop", (40, 40, 10, 0)),
        ((10, 10), (20, 40), "pad", (20, 20, 0, 10)),
        ((5, 500), (10, 10), "pad", (1, 10, 4, 0)),  # never a zero-height image
        ((3000, 4000), (224, 224), "stretch", (224, 224, 0, 0)),
    ],
)
def test_fit_geometry_by_hand(src, dst, policy, expected):
    assert fit_geometry(*src, *dst, policy) == expected


def test_builtin_sources_use_the_resize_policy():
    square = build_dataset(data("synthetic", image_size=[16, 32], resize="stretch")).train.x
    cropped = build_dataset(data("synthetic", image_size=[16, 32], resize="crop")).train.x
    padded = build_dataset(data("synthetic", image_size=[16, 32], resize="pad")).train.x
    assert square.shape == cropped.shape == padded.shape == (400, 16, 32, 3)
    assert (padded[:, :, :8] == 0).all() and (padded[:, :, -8:] == 0).all()  # 32x32 -> 16x16, centred
    assert not (square[:, :, :8] == 0).all()
    assert not np.array_equal(square, cropped)


def test_bad_resize_policy_is_a_config_error():
    from kerasclf.config import load_config
    from kerasclf.errors import ConfigError

    with pytest.raises(ConfigError, match="data.resize must be one of crop, pad, stretch"):
        load_config(None, ["data.resize=squash"])


def test_size_rule_caps_large_photos_and_keeps_aspect(tmp_path, caplog):
    for c in "ab":
        for i in range(3):
            write_image(tmp_path / "photos" / c / f"{i}.jpg", class_image(c, (600, 800), seed=i))
    with caplog.at_level("INFO", logger="kerasclf"):
        ds = build_dataset(data(f"folder:{tmp_path / 'photos'}"))
    assert ds.info.image_size == (384, 512)  # 600x800 scaled to a longer side of 512
    assert "scaled down to at most 512" in caplog.text and "all images have this size" in caplog.text


def test_size_rule_ignores_unreadable_headers(tmp_path, make_image_folder, caplog):
    root = make_image_folder(tmp_path / "root", {"a": 3, "b": 3}, size=(9, 11))
    (root / "a" / "a000.png").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="a000.png"), caplog.at_level("INFO", logger="kerasclf"):
        ds = build_dataset(data(f"folder:{root}"))
    assert ds.train.x.shape == (5, 9, 11, 3)
    assert "median size of 5 images" in caplog.text


def test_image_size_too_large_for_memory_is_refused_before_decoding(tmp_path, make_image_folder, monkeypatch):
    import psutil

    from kerasclf.data.sources import folder

    root = make_image_folder(tmp_path / "root", {"a": 2, "b": 2})
    available = psutil.virtual_memory().available
    side = int((available / 4 / 3) ** 0.5) + 1  # four images at side x side x 3 bytes > available
    decoded = []
    monkeypatch.setattr(folder, "decode_files", lambda *args, **kwargs: decoded.append(args))
    refusal = r"need about \d+\.\d GiB of memory at the \w+ stage .* set a smaller data\.(batch_size or data\.)?image_size"
    with pytest.raises(DataError, match=refusal) as info:
        build_dataset(data(f"folder:{root}", image_size=[side, side]))
    assert "4 images" in str(info.value) and not decoded  # refused before any decode


def test_dry_run_of_a_folder_with_one_huge_first_photo_is_small(cli, tmp_path, tiny_cnn):
    # Issue #8: a 4000x3000 photo sorted first made a dry run take 14 GB.
    import json

    import psutil

    root = tmp_path / "mixed"
    write_image(root / "a" / "000_big.jpg", class_image("a", (3000, 4000)))
    for c in "ab":
        for i in range(1, 5):
            write_image(root / c / f"{i:03d}.png", class_image(c, (16, 16), seed=i))
    before = psutil.Process().memory_info().rss
    result = cli("train", "--dry-run", "--set", f"data.source=folder:{root}", "--set", "data.val_fraction=0", *tiny_cnn)
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["image_size"] == [16, 16]
    assert "Note: data.image_size is not set: using [16, 16] (height, width), the median size of 9 images" in result.stderr
    assert psutil.Process().memory_info().rss - before < 500 * 2**20


def test_non_utf8_file_and_class_names_are_read(tmp_path, make_image_folder):
    root = make_image_folder(tmp_path / "root", {"a": 2, "b": 2})
    raw_root = os.fsencode(root)
    os.mkdir(raw_root + b"/caf\xe9")  # a Latin-1 folder name: not UTF-8
    for i in range(2):
        write_image(os.fsdecode(raw_root + b"/caf\xe9/img\xff%d.png" % i), class_image("c", seed=i))
    with open(raw_root + b"/a/bad\xfe.png", "wb") as f:
        f.write(b"not an image")
    with pytest.warns(UserWarning, match=r"bad\\xfe\.png"):
        ds = build_dataset(data(f"folder:{root}"))
    assert ds.info.class_names == ["a", "b", "caf\\xe9"]  # shown escaped, never a crash
    assert len(ds.train) == 6 and sorted(set(ds.train.y.tolist())) == [0, 1, 2]
