"""Issue 17, part 4: the PIL decoder (TensorFlow-free installs, files tf.data rejects) and the
TensorFlow decoder give the same pixels for every image mode PIL knows, each checked against a
reference built from the arrays the files were written from; EXIF orientation is applied by both."""

import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

H, W = 6, 5
rng = np.random.default_rng(17)
RGB = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
GREY = rng.integers(0, 256, (H, W), dtype=np.uint8)
GREY16 = rng.integers(0, 65536, (H, W), dtype=np.uint16)
RGB16 = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
PALETTE = rng.integers(0, 256, (256, 3), dtype=np.uint8)
INDEX = rng.integers(0, 256, (H, W), dtype=np.uint8)
SMOOTH = np.stack(np.meshgrid(np.linspace(40, 200, 16), np.linspace(60, 180, 24)), -1)  # 24 x 16
SMOOTH = np.concatenate([SMOOTH, SMOOTH[..., :1]], -1).astype(np.uint8)


def grey3(g):
    return np.repeat(g[..., None], 3, -1)


def palette_image():
    image = Image.fromarray(INDEX, "P")
    image.putpalette(PALETTE.reshape(-1).tolist())
    return image


def png16_rgb(path, array):
    """A 16-bit RGB PNG written by hand (PIL cannot write one)."""
    raw = b"".join(b"\0" + row.astype(">u2").tobytes() for row in array)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", array.shape[1], array.shape[0], 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# name -> (write(path) -> None, file suffix, reference uint8 (H, W, 3), tolerance in grey levels)
CASES = {
    "1": (lambda p: Image.fromarray(GREY > 127).save(p), ".png", grey3(np.where(GREY > 127, 255, 0).astype(np.uint8)), 0),
    "L": (lambda p: Image.fromarray(GREY).save(p), ".png", grey3(GREY), 0),
    "LA": (lambda p: Image.fromarray(np.dstack([GREY, INDEX]), "LA").save(p), ".png", grey3(GREY), 0),
    "P with transparency": (lambda p: palette_image().save(p, transparency=3), ".png", PALETTE[INDEX], 0),
    "RGB": (lambda p: Image.fromarray(RGB).save(p), ".png", RGB, 0),
    "RGBA": (lambda p: Image.fromarray(np.dstack([RGB, INDEX])).save(p), ".png", RGB, 0),
    "CMYK": (lambda p: Image.fromarray(SMOOTH).convert("CMYK").save(p, quality=95), ".jpg", SMOOTH, 6),
    "I;16": (lambda p: Image.fromarray(GREY16).save(p), ".png", grey3((GREY16 >> 8).astype(np.uint8)), 0),
    "I": (lambda p: Image.fromarray(GREY16.astype(np.int32)).save(p), ".png", grey3((GREY16 >> 8).astype(np.uint8)), 0),
    "16-bit RGB": (lambda p: png16_rgb(p, RGB16), ".png", (RGB16 >> 8).astype(np.uint8), 0),
    "palette GIF": (lambda p: palette_image().save(p), ".gif", PALETTE[INDEX], 0),
    "BMP": (lambda p: Image.fromarray(RGB).save(p), ".bmp", RGB, 0),
    "palette BMP": (lambda p: palette_image().save(p), ".bmp", PALETTE[INDEX], 0),
}


def write_case(tmp_path, name):
    write, suffix, reference, tolerance = CASES[name]
    path = tmp_path / f"image{suffix}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Pillow: saving mode I as PNG
        write(path)
    return path, reference, tolerance


def assert_close(got, reference, tolerance, what):
    assert got.shape == reference.shape and got.dtype == np.uint8, (what, got.shape)
    diff = np.abs(got.astype(int) - reference.astype(int))
    assert diff.max() <= tolerance if tolerance == 0 else diff.mean() <= tolerance, (what, diff.max(), diff.mean())


@pytest.mark.backend_agnostic
@pytest.mark.parametrize("name", CASES)
def test_pil_decoder_matches_the_reference(tmp_path, name):
    from kerasclf.data.images import decode

    path, reference, tolerance = write_case(tmp_path, name)
    size = reference.shape[:2]
    assert_close(decode(path, size), reference, tolerance, "PIL at its size")
    assert_close(decode(path), reference, tolerance, "PIL, no size")


@pytest.mark.parametrize("name", CASES)
def test_tensorflow_decoder_matches_the_reference(tmp_path, name):
    pytest.importorskip("tensorflow")
    from kerasclf.data.images import decode_files

    path, reference, tolerance = write_case(tmp_path, name)
    x, kept = decode_files([str(path)], reference.shape[:2])  # tf.data first, PIL for what it rejects
    assert kept == [0]
    assert_close(x[0], reference, tolerance, "tf.data")


def test_float_images_are_taken_as_0_to_255():
    """Mode F cannot be stored as PNG, JPEG, BMP or GIF, so no file reaches the decoders in it;
    an in-memory one is converted like the others, not clipped to white."""
    from kerasclf.data.geometry import to_rgb_array

    values = np.array([[-3.0, 0.4, 127.6, 300.0]], np.float32)
    assert to_rgb_array(Image.fromarray(values)).tolist() == [[[0] * 3, [0] * 3, [128] * 3, [255] * 3]]


def sideways_jpeg(path, orientation):
    """SMOOTH stored so that the viewer must apply `orientation` to see it upright."""
    stored = {6: np.rot90(SMOOTH, k=1), 8: np.rot90(SMOOTH, k=-1), 3: np.rot90(SMOOTH, k=2)}[orientation]
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(np.ascontiguousarray(stored)).save(path, quality=95, exif=exif)
    return path


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_by_both_decoders(tmp_path, orientation):
    from kerasclf.data.images import decode, decode_files, image_size_of

    path = sideways_jpeg(tmp_path / "phone.jpg", orientation)
    assert image_size_of(path) == SMOOTH.shape[:2]  # the size the data report and sizing read: upright
    assert_close(decode(path, SMOOTH.shape[:2]), SMOOTH, 4, "PIL")
    assert_close(decode(path, (12, 8)), SMOOTH[::2, ::2], 12, "PIL, half size")
    pytest.importorskip("tensorflow")
    x, _ = decode_files([str(path)], SMOOTH.shape[:2])
    assert_close(x[0], SMOOTH, 4, "tf.data")


def test_no_raw_libjpeg_or_tensorflow_lines_on_the_console(tmp_path):
    """A truncated JPEG: libjpeg's own line ("Improper call to JPEG library ...") and TensorFlow's
    CPU note stay off the console; the file is named once, in the skipped-files warning."""
    import io
    import subprocess
    import sys

    from conftest import REPO_ROOT

    pytest.importorskip("tensorflow")
    buf = io.BytesIO()
    Image.fromarray(SMOOTH).save(buf, "JPEG")
    data = buf.getvalue()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    (tmp_path / "good.jpg").write_bytes(data)
    code = (
        "import sys\nfrom kerasclf.console import import_tensorflow_quietly\nimport_tensorflow_quietly()\n"
        "from kerasclf.data.images import decode_files\n"
        f"x, kept = decode_files([{str(tmp_path / 'good.jpg')!r}, {str(tmp_path / 'cut.jpg')!r}], (12, 8))\n"
        "print('KEPT', kept)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert "KEPT [0]" in done.stdout, done.stderr
    assert "JPEG library" not in done.stderr and "oneDNN supports" not in done.stderr, done.stderr
    assert done.stderr.count("cut.jpg") == 1, done.stderr


def test_the_data_report_says_exif_orientation_is_applied(tmp_path):
    from kerasclf.config import DataConfig
    from kerasclf.evaluation.data_report import build_report_dataset, write_data_report

    for cls in ("a", "b"):
        (tmp_path / "root" / cls).mkdir(parents=True)
        Image.fromarray(SMOOTH).save(tmp_path / "root" / cls / "plain.jpg")
        Image.fromarray(SMOOTH[::-1]).save(tmp_path / "root" / cls / "plain2.jpg")
    sideways_jpeg(tmp_path / "root" / "a" / "phone.jpg", 6)
    dataset = build_report_dataset(DataConfig(source=f"folder:{tmp_path / 'root'}", image_size=[12, 8], val_fraction=0))
    result = write_data_report(dataset, tmp_path / "out")
    assert result["numbers"]["exif_turned"] == {"train": 1}
    assert result["numbers"]["image_size_counts"]["train"] == [[24, 16, 5]]  # the phone photo counted upright
    report = (tmp_path / "out" / "report.md").read_text()
    assert "EXIF orientation is applied" in report and "train: 1 of 5" in report
