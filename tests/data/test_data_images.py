"""decode_image on every kind of awkward or broken file, all written into tmp_path."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from lookalike.data.images import decode_image, normalize_mode
from lookalike.errors import BadImageError


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width x height (8-bit gray) and has no pixel data at all."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_plain_rgb_and_gray_pass_through(tmp_path, image_file):
    rgb = image_file(tmp_path / "rgb.png")
    gray = image_file(tmp_path / "gray.png", mode="L")
    decoded = decode_image(rgb)
    assert decoded.mode == "RGB" and decoded.size == (12, 10)
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(Image.open(rgb)))
    assert decode_image(gray).mode == "L"


def test_result_is_detached_from_the_file(tmp_path, image_file):
    path = image_file(tmp_path / "x.png")
    decoded = decode_image(path)
    path.unlink()
    assert decoded.getpixel((0, 0)) is not None


@pytest.mark.parametrize("content", [b"\x00\x01garbage" * 20, b"", b"hello, world\n"])
def test_not_an_image(tmp_path, content):
    path = tmp_path / "photos" / "cat" / "3.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(BadImageError, match=r"cat/3.jpg: not an image file \(cannot identify"):
        decode_image(path)


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is a text file\n" * 10)
    with pytest.raises(BadImageError, match=r"notes.png: not an image file \(cannot identify"):
        decode_image(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path, image_file, fmt):
    path = image_file(tmp_path / f"full.{fmt.lower()}", size=(64, 64), format=fmt)
    data = path.read_bytes()
    cut = tmp_path / f"cut.{fmt.lower()}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BadImageError, match=f"cut.{fmt.lower()}: truncated or corrupt"):
        decode_image(cut)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(BadImageError, match=r"gone\.png: no such file"):
        decode_image(tmp_path / "gone.png")
    with pytest.raises(BadImageError, match="is a folder"):
        decode_image(tmp_path)


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(path, quality=100)
    decoded = decode_image(path)
    assert decoded.mode == "RGB"
    red, green, blue = np.asarray(decoded).reshape(-1, 3).mean(0)
    assert red > 240 and green < 15 and blue < 15


def test_16bit_png_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.array([[0, 257 * 100, 65535, 300]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    decoded = decode_image(path)
    assert decoded.mode == "L"
    np.testing.assert_array_equal(np.asarray(decoded), [[0, 100, 255, 1]])


def test_32bit_and_float_grayscale():
    wide = Image.fromarray(np.array([[-10, 0, 990]], dtype=np.int32), mode="I")
    np.testing.assert_array_equal(np.asarray(normalize_mode(wide)), [[0, 3, 255]])
    flat = Image.fromarray(np.full((2, 2), 0.5, dtype=np.float32), mode="F")
    np.testing.assert_array_equal(np.asarray(normalize_mode(flat)), np.zeros((2, 2)))


def test_rgba_is_composited_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    pixels = np.array([[[255, 0, 0, 0], [255, 0, 0, 255], [0, 0, 0, 128]]], dtype=np.uint8)
    Image.fromarray(pixels, mode="RGBA").save(path)
    decoded = decode_image(path)
    assert decoded.mode == "RGB"
    np.testing.assert_allclose(np.asarray(decoded)[0],
                               [[255, 255, 255], [255, 0, 0], [127, 127, 127]], atol=1)


def test_gray_with_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(np.array([[[0, 0], [0, 255]]], dtype=np.uint8), mode="LA").save(path)
    decoded = decode_image(path)
    assert decoded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(decoded)[0], [[255, 255, 255], [0, 0, 0]])


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "palette.png"
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.putpixel((1, 0), 1)
    image.save(path, transparency=1)
    decoded = decode_image(path)
    assert decoded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(decoded)[0], [[255, 0, 0], [255, 255, 255]])
    opaque = tmp_path / "opaque.png"
    image.save(opaque)
    np.testing.assert_array_equal(np.asarray(decode_image(opaque))[0], [[255, 0, 0], [0, 0, 255]])


def test_exif_orientation_is_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.new("RGB", (40, 20), (0, 128, 0)).save(path, exif=exif)
    assert Image.open(path).size == (40, 20)
    assert decode_image(path).size == (20, 40)


def test_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("L", (2000, 2000), 7).save(path)  # 4 megapixels, a few kB on disk
    assert path.stat().st_size < 50_000
    with pytest.raises(BadImageError, match=r"bomb.png: 2000x2000 image has 4000000 pixels, "
                                            r"above the cap of 1000"):
        decode_image(path, max_pixels=1000)
    assert decode_image(path).size == (2000, 2000)  # the default cap is 40 megapixels


def test_cap_is_checked_from_the_header_alone(tmp_path):
    # no pixel data at all: a decode would fail as "truncated", the cap check does not decode
    path = tmp_path / "header.png"
    path.write_bytes(png_header_only(30000, 1000))
    start = time.perf_counter()
    with pytest.raises(BadImageError, match="30000x1000 image has 30000000 pixels"):
        decode_image(path, max_pixels=1_000_000)
    assert time.perf_counter() - start < 1.0


def test_pillow_bomb_error_is_reported(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(20000, 20000))  # 400 MP, above Pillow's own limit
    with pytest.raises(BadImageError, match=r"huge\.png: .*decompression bomb"):
        decode_image(path, max_pixels=None)


def test_file_object_with_name(tmp_path, image_file):
    data = image_file(tmp_path / "x.png").read_bytes()
    assert decode_image(io.BytesIO(data), name="upload").size == (12, 10)
    with pytest.raises(BadImageError, match=r"^upload: not an image file"):
        decode_image(io.BytesIO(b"nope"), name="upload")
