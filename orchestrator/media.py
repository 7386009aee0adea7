"""Photo intake: turn a client's ``image_base64`` into one normalised RGB PNG.

Every memory starts from an uploaded photo, and every later stage (scene analysis, the GPU pool,
the ``originals`` bucket) wants the same thing: an 8-bit sRGB PNG, upright, without alpha and
without the uploader's metadata (EXIF GPS positions stay on the client's device). Limits are
enforced in the cheapest order: string length before base64 decoding, byte size before image
parsing, header pixel count before pixel decoding, so a hostile upload costs little.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from orchestrator.errors import InvalidInput, TooLarge

FIELD = "image_base64"
MIN_SIDE_PX = 16
"""Smaller images carry too little for scene analysis or a world model; likely a thumbnail/icon."""

# Pillow plugin names tried by Image.open; everything else is refused unparsed. Multi-picture
# JPEGs from phones and cameras open through the JPEG plugin and report format "MPO".
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_SUPPORTED_TEXT = "JPEG, PNG, WebP, GIF (first frame), BMP, TIFF"

# Malformed files make Pillow's parsers raise a zoo of exception types (fuzzing shows all of
# these); each means "this upload is broken", never "the server is".
_DECODE_ERRORS = (
    OSError,
    SyntaxError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    EOFError,
    struct.error,
    zlib.error,
)
_DATA_URL = re.compile(r"\s*data:([^,]{0,200}),", re.IGNORECASE)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True, slots=True)
class Photo:
    """A validated, normalised photo.

    Attributes:
        png: 8-bit RGB PNG bytes: EXIF orientation applied, alpha composited over white,
            colours converted to sRGB when the upload embedded an ICC profile, no metadata.
        width: width in pixels (after orientation).
        height: height in pixels (after orientation).
        source_format: the upload's format as Pillow names it: "JPEG", "PNG", "WEBP", "GIF",
            "BMP", "TIFF" or "MPO" (a multi-picture JPEG).
    """

    png: bytes = field(repr=False)
    width: int
    height: int
    source_format: str


def decode_photo(image_base64: str, *, max_bytes: int, max_pixels: int) -> Photo:
    """Validate and normalise an uploaded photo.

    Args:
        image_base64: standard base64 (whitespace and line breaks ignored), optionally behind a
            ``data:image/...;base64,`` prefix.
        max_bytes: largest accepted decoded file size, in bytes.
        max_pixels: largest accepted width * height, in pixels (read from the header, before
            any pixel is decoded, which is what stops decompression bombs).

    Raises:
        TooLarge: the string, the decoded bytes or the pixel count exceeds its limit.
        InvalidInput: ``invalid_base64`` (malformed base64 or data URL, or empty),
            ``not_an_image`` (no supported format recognised), ``image_too_small`` (a side under
            16 px), ``corrupt_image`` (truncated or damaged data), ``unsupported_image``
            (a pixel format that cannot be converted to RGB).
        All errors name field "image_base64".
    """
    raw = _decode_base64(image_base64, max_bytes=max_bytes)
    try:
        img = Image.open(io.BytesIO(raw), formats=SUPPORTED_FORMATS)
    except UnidentifiedImageError:
        raise InvalidInput("not_an_image", _not_an_image_detail(raw), field=FIELD) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own global guard fired at open (it raises for > 2 * MAX_IMAGE_PIXELS; the
        # warning only becomes an exception under -W error). Either way: too many pixels.
        raise TooLarge(
            f"image_base64 declares more pixels than the decoder's safety limit; "
            f"the limit is {max_pixels} pixels (width * height)",
            field=FIELD,
        ) from None
    except _DECODE_ERRORS as exc:
        raise _corrupt("image", exc) from None

    with img:
        fmt = img.format or "unknown"
        width, height = img.size
        # The header's size is all we trust before decoding: check it first.
        if width * height > max_pixels:
            raise TooLarge(
                f"image_base64 is {width}x{height} = {width * height} pixels; "
                f"the limit is {max_pixels} pixels (width * height): downscale the photo",
                field=FIELD,
            )
        if min(width, height) < MIN_SIDE_PX:
            raise InvalidInput(
                "image_too_small",
                f"image_base64 is {width}x{height} pixels; each side must be at least "
                f"{MIN_SIDE_PX} pixels",
                field=FIELD,
            )
        try:
            img.load()
        except _DECODE_ERRORS as exc:
            raise _corrupt(fmt, exc) from None
        icc = img.info.get("icc_profile")
        upright = _exif_transpose(img)
        rgb = _to_rgb(upright, icc if isinstance(icc, bytes) else None)

    rgb.info = {}  # drop EXIF/ICC/text chunks: pixels are sRGB now and metadata stays private
    return Photo(png=_save_png(rgb), width=rgb.width, height=rgb.height, source_format=fmt)


def png_to_rgb_array(png: bytes) -> npt.NDArray[np.uint8]:
    """Decode PNG (or any Pillow-readable) bytes into a writable H x W x 3 uint8 RGB array.

    Meant for images this service produced (``Photo.png``, last frames); raises Pillow's
    ``OSError``/``UnidentifiedImageError`` on anything it cannot read.
    """
    with Image.open(io.BytesIO(png)) as img:
        return np.array(img.convert("RGB"), dtype=np.uint8)


def encode_png(array: npt.NDArray[np.uint8]) -> bytes:
    """Encode an H x W x 3 uint8 RGB array (or H x W grayscale) as PNG bytes.

    Raises:
        ValueError: wrong dtype or shape.
    """
    if array.dtype != np.uint8:
        raise ValueError(f"encode_png needs uint8 pixels, got {array.dtype}")
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"encode_png needs H x W x 3 or H x W, got shape {array.shape}")
    return _save_png(Image.fromarray(np.ascontiguousarray(array)).convert("RGB"))


def _decode_base64(text: str, *, max_bytes: int) -> bytes:
    """Strip an optional data-URL prefix and whitespace, then strictly decode, within limits."""
    max_chars = 4 * math.ceil(max_bytes / 3)
    # Generous first bound on the raw string (CRLF every 76 chars, a data-URL header) so that a
    # huge string is refused before any copy of it is made.
    if len(text) > max_chars + max_chars // 38 + 256:
        raise _too_many_bytes(max_bytes, f"a {len(text)}-character string")
    if match := _DATA_URL.match(text):
        params = match.group(1).split(";")
        if not (params[0].strip().lower().startswith("image/") and params[-1].lower() == "base64"):
            raise InvalidInput(
                "invalid_base64",
                "image_base64 data URL must look like 'data:image/<type>;base64,<data>'",
                field=FIELD,
            )
        text = text[match.end() :]
    compact = "".join(text.split())
    if not compact:
        raise InvalidInput("invalid_base64", "image_base64 is empty: send a photo", field=FIELD)
    if len(compact) > max_chars:
        raise _too_many_bytes(max_bytes, f"about {len(compact) * 3 // 4} bytes")
    try:
        raw = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "invalid_base64",
            "image_base64 is not valid base64: use the standard alphabet (A-Z, a-z, 0-9, '+', "
            "'/') with '=' padding; URL-safe base64 ('-', '_') is not accepted",
            field=FIELD,
        ) from None
    if len(raw) > max_bytes:
        raise _too_many_bytes(max_bytes, f"{len(raw)} bytes")
    return raw


def _exif_transpose(img: Image.Image) -> Image.Image:
    """Rotate/flip per the EXIF orientation tag into a new image; broken EXIF is ignored."""
    try:
        return ImageOps.exif_transpose(img)
    except _DECODE_ERRORS:
        # Damaged EXIF is common in real photos (editors, messengers); the pixels are fine.
        # A copy, because the caller closes the opened file.
        return img.copy()


def _to_rgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """Convert any supported mode to 8-bit sRGB without alpha."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        img = _high_depth_to_l(img)
    if img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    if icc is not None and img.mode in ("RGB", "CMYK"):
        managed = _icc_to_srgb(img, icc)
        if managed is not None:
            return managed
    if img.mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except ValueError:
        raise InvalidInput(
            "unsupported_image",
            f"image_base64 uses pixel mode {img.mode}, which cannot be converted to RGB; "
            f"re-export it as an 8-bit RGB JPEG or PNG",
            field=FIELD,
        ) from None


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale 16-bit/32-bit/float grayscale to 8 bits (Pillow's own convert clips at 255)."""
    arr = np.asarray(img).astype(np.float64)
    arr = np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)
    if img.mode.startswith("I;16"):
        scale = 255.0 / 65535.0
    else:
        # "I"/"F" carry no bit depth: guess from the value range (0..1 float, 8-bit, 16-bit).
        peak = float(arr.max(initial=0.0))
        if img.mode == "F" and peak <= 1.0:
            scale = 255.0
        elif peak <= 255.0:
            scale = 1.0
        elif peak <= 65535.0:
            scale = 255.0 / 65535.0
        else:
            scale = 255.0 / peak
    out = np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)
    return Image.fromarray(out)


def _icc_to_srgb(img: Image.Image, icc: bytes) -> Image.Image | None:
    """Convert from the embedded profile (e.g. an iPhone's Display P3, a CMYK press profile)."""
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if img.mode == "RGB" and "srgb" in ImageCms.getProfileDescription(src).lower():
            return img  # already sRGB: skip a costly near-identity transform
        return ImageCms.profileToProfile(img, src, _SRGB, outputMode="RGB")
    except (ImageCms.PyCMSError, *_DECODE_ERRORS):
        return None  # unusable or mismatched profile: fall back to treating values as sRGB


def _save_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    # Level 1 is several times faster than the default 6 for ~10% larger files; the PNG is an
    # internal hand-off (GPU input, originals bucket), so latency wins.
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _not_an_image_detail(raw: bytes) -> str:
    head = raw[:32]
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        found = "a HEIC/HEIF photo, which is not supported"
    elif head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        found = "an AVIF image, which is not supported"
    else:
        found = "data that is not a recognised image"
    return (
        f"image_base64 decodes to {found}; supported formats are {_SUPPORTED_TEXT} "
        f"(export HEIC photos as JPEG)"
    )


def _corrupt(fmt: str, exc: BaseException) -> InvalidInput:
    reason = str(exc)[:120] or type(exc).__name__
    return InvalidInput(
        "corrupt_image",
        f"image_base64 is a truncated or damaged {fmt} file ({reason}); re-export the photo",
        field=FIELD,
    )


def _too_many_bytes(max_bytes: int, got: str) -> TooLarge:
    return TooLarge(
        f"image_base64 is {got}; the limit is {max_bytes} bytes decoded "
        f"(about {4 * math.ceil(max_bytes / 3)} base64 characters): send a smaller photo",
        field=FIELD,
    )
