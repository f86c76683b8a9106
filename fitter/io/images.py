"""Reading photos: RGB uint8 arrays with EXIF orientation applied, EXIF focal length, image lists.

All images come back as (H, W, 3) uint8 RGB in the orientation a viewer shows (EXIF Orientation
applied), so pixel coordinates everywhere in fitter refer to that upright image.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "read_image",
    "read_exif_focal_35mm",
    "focal_px_from_exif",
    "list_images",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File name endings (lower case) that `list_images` picks up from folders."""

# EXIF tag numbers (Exif 2.3): base IFD pointer to the Exif sub-IFD, and tags inside it.
_EXIF_IFD_POINTER = 0x8769
_TAG_FOCAL_LENGTH = 0x920A  # mm, rational
_TAG_FOCAL_LENGTH_35MM = 0xA405  # mm, short; 0 means unknown
_TAG_FOCAL_PLANE_X_RESOLUTION = 0xA20E  # pixels per unit on the sensor, at ExifImageWidth
_TAG_FOCAL_PLANE_Y_RESOLUTION = 0xA20F
_TAG_FOCAL_PLANE_RESOLUTION_UNIT = 0xA210  # 2 inch (default), 3 cm, 4 mm, 5 um
_TAG_EXIF_IMAGE_WIDTH = 0xA002
_TAG_EXIF_IMAGE_HEIGHT = 0xA003
_UNIT_TO_MM = {1: 25.4, 2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}


class ImageReadError(ValueError):
    """A file exists but cannot be read as an image (corrupt, truncated or not an image)."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB, upright (EXIF Orientation applied).

    Conversions: greyscale and palette images are expanded to RGB; an alpha channel (RGBA, LA,
    PA, palette transparency) is composited onto a white background, so transparent areas read
    as white instead of whatever colour the transparent pixels happen to store; 16-bit images
    are scaled to 8 bits (value * 255 / 65535); 32-bit integer images are treated as 16-bit when
    their maximum is above 255; float images in [0, 1] are scaled by 255 (others are clipped).
    Raises FileNotFoundError for a missing path and ImageReadError for anything unreadable.
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"image not found: {file}")
    if file.is_dir():
        raise ImageReadError(
            f"{file} is a folder, not an image file; pass an image file (or use list_images for folders)"
        )
    if file.stat().st_size == 0:
        raise ImageReadError(f"cannot read {file}: the file is empty (0 bytes); re-export or re-download it")
    try:
        with Image.open(file) as opened:
            opened.load()
            image = _apply_exif_orientation(opened, file)
            return _to_rgb_uint8(image)
    except UnidentifiedImageError:
        raise ImageReadError(
            f"cannot read {file}: not an image format Pillow understands; convert it to JPEG or PNG"
        ) from None
    except Image.DecompressionBombError as error:
        raise ImageReadError(f"cannot read {file}: too large ({error}); downscale it before fitting") from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, ImageReadError):
            raise
        raise ImageReadError(
            f"cannot read {file}: the file is corrupt or truncated ({error}); re-export or re-download it"
        ) from None


def _apply_exif_orientation(image: Image.Image, file: Path) -> Image.Image:
    """Rotate/flip by the EXIF Orientation tag; a broken EXIF block leaves the image as stored."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception as error:  # broken EXIF must not make a readable photo unreadable
        warnings.warn(f"{file}: ignoring unreadable EXIF orientation ({error})", stacklevel=3)
        return image


def _to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB (see read_image for the rules)."""
    mode = image.mode
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"), dtype=np.uint8).copy()
    if mode.startswith("I;16") or mode == "I" or mode == "F":
        values = np.asarray(image).astype(np.float64)
        if mode.startswith("I;16"):
            scaled = values * (255.0 / 65535.0)
        elif mode == "I":
            scaled = values * (255.0 / 65535.0) if values.max(initial=0) > 255 else values
        else:  # float: [0, 1] images are scaled, others taken as 0..255
            scaled = values * 255.0 if values.max(initial=0) <= 1.0 else values
        grey = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode != "RGB":  # L, 1, CMYK, YCbCr, LAB, HSV, RGBX ...
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def read_exif_focal_35mm(path: str | os.PathLike) -> float | None:
    """The 35 mm-equivalent focal length (mm) recorded in a photo's EXIF, or None when absent.

    Uses FocalLengthIn35mmFilm when set (> 0). Otherwise, when FocalLength, FocalPlaneXResolution /
    FocalPlaneYResolution (+ unit) and ExifImageWidth / ExifImageHeight are all present and give a
    plausible sensor (long side 1-100 mm), it returns the equivalent that makes the formula of
    `focal_px_from_exif` exact: f35 = f_mm * pixels_per_mm / max(ExifImageWidth, ExifImageHeight) * 36.
    FocalLength alone (no sensor size) gives None. Raises FileNotFoundError / ImageReadError like read_image.
    """
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"image not found: {file}")
    try:
        with Image.open(file) as image:
            exif = image.getexif()
            exif_ifd = dict(exif.get_ifd(_EXIF_IFD_POINTER))
    except UnidentifiedImageError:
        raise ImageReadError(
            f"cannot read {file}: not an image format Pillow understands; convert it to JPEG or PNG"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageReadError(
            f"cannot read EXIF of {file} ({error}); re-export the image or give the focal length explicitly"
        ) from None
    # Some writers put the tags in the base IFD: look there too.
    tags = {**dict(exif), **exif_ifd}

    focal_35 = _as_positive_float(tags.get(_TAG_FOCAL_LENGTH_35MM))
    if focal_35 is not None:
        return focal_35

    focal_mm = _as_positive_float(tags.get(_TAG_FOCAL_LENGTH))
    res_x = _as_positive_float(tags.get(_TAG_FOCAL_PLANE_X_RESOLUTION))
    res_y = _as_positive_float(tags.get(_TAG_FOCAL_PLANE_Y_RESOLUTION))
    width = _as_positive_float(tags.get(_TAG_EXIF_IMAGE_WIDTH))
    height = _as_positive_float(tags.get(_TAG_EXIF_IMAGE_HEIGHT))
    unit_mm = _UNIT_TO_MM.get(int(tags.get(_TAG_FOCAL_PLANE_RESOLUTION_UNIT, 2) or 2))
    if None in (focal_mm, res_x, res_y, width, height, unit_mm):
        return None
    pixels_per_mm_x = res_x / unit_mm
    pixels_per_mm_y = res_y / unit_mm
    sensor_long_mm = max(width / pixels_per_mm_x, height / pixels_per_mm_y)
    if not 1.0 <= sensor_long_mm <= 100.0:
        return None
    # Focal length in pixels of the EXIF-sized image along the long side, then its 36 mm equivalent.
    long_side_px = max(width, height)
    pixels_per_mm_long = pixels_per_mm_x if width >= height else pixels_per_mm_y
    return float(focal_mm * pixels_per_mm_long / long_side_px * 36.0)


def focal_px_from_exif(path: str | os.PathLike, width: int, height: int) -> float | None:
    """Focal length in pixels for an image of `width` x `height` px from its EXIF, or None.

    focal_px = f35 / 36 * max(W, H), with f35 from `read_exif_focal_35mm`: 36 mm is the long side
    of a 35 mm film frame. (For sensors that are not 3:2, cameras that compute f35 from the diagonal
    make this a few percent off; good enough as a fitting initialisation.)
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"focal_px_from_exif: image size must be positive, got {width} x {height}")
    focal_35 = read_exif_focal_35mm(path)
    if focal_35 is None:
        return None
    return focal_35 / 36.0 * max(width, height)


def _as_positive_float(value: object) -> float | None:
    """EXIF numbers (int, IFDRational, tuple numerator/denominator) -> float > 0, else None."""
    if value is None:
        return None
    try:
        if isinstance(value, tuple) and len(value) == 2:
            number = float(value[0]) / float(value[1])
        else:
            number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not np.isfinite(number) or number <= 0:
        return None
    return number


def list_images(paths: str | os.PathLike | Iterable[str | os.PathLike], recursive: bool = False) -> list[Path]:
    """Image files named by `paths`: files as given, folders expanded to their image files.

    Folder contents are filtered by IMAGE_EXTENSIONS (case-insensitive; hidden files skipped),
    searched recursively when `recursive`. The result is sorted by path and each file appears
    once (duplicates detected on the resolved path). Raises FileNotFoundError for a missing path
    and ValueError for an explicitly named file whose extension is not an image extension.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: dict[Path, Path] = {}
    for entry in paths:
        item = Path(entry)
        if item.is_dir():
            candidates = item.rglob("*") if recursive else item.iterdir()
            for candidate in candidates:
                if (
                    candidate.suffix.lower() in IMAGE_EXTENSIONS
                    and not candidate.name.startswith(".")
                    and candidate.is_file()
                ):
                    found.setdefault(candidate.resolve(), candidate)
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_EXTENSIONS:
                raise ValueError(
                    f"{item} does not have an image extension ({', '.join(IMAGE_EXTENSIONS)}); rename or convert it"
                )
            found.setdefault(item.resolve(), item)
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return sorted(found.values(), key=lambda p: str(p))
