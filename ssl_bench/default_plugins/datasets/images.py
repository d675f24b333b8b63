"""Shared image reading and resizing helpers for the surgical image/clip readers.

Every reader returns frames squashed to a square ``size`` x ``size`` (the aspect ratio is not
kept: a 854x480 frame becomes ``size`` x ``size``), resized with area averaging (OpenCV
``INTER_AREA``) for images and nearest neighbour for masks, so class ids are never blended.
Decoding goes through Pillow with a full ``load()`` so that a truncated PNG/JPEG fails here
with a one-line :class:`~ssl_bench.errors.DataError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from ssl_bench.errors import DataError


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError:
        raise DataError(f"{path}: file is missing; restore it from the dataset archive") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: image does not decode ({exc}); re-extract it from the "
                        "dataset archive") from None
    return image


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB; an RGBA or grey file is converted (alpha dropped)."""
    image = _open(path)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def read_channels(path: Path) -> np.ndarray:
    """The raw pixel values: (H, W) for grey/palette-free single channel, (H, W, C) otherwise.

    RGBA masks (CholecSeg8k ships some with alpha = 255) keep only their first 3 channels."""
    image = _open(path)
    if image.mode in ("I;16", "I"):
        array = np.asarray(image)
        if array.max(initial=0) > 255:
            raise DataError(f"{path}: 16-bit mask values above 255 are not a valid label map")
        return array.astype(np.uint8)
    if image.mode == "P":
        image = image.convert("RGB")
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 3 and array.shape[2] == 4:
        array = array[..., :3]
    if array.ndim == 3 and array.shape[2] == 2:  # LA
        array = array[..., 0]
    return array


def read_grey(path: Path) -> np.ndarray:
    """(H, W) uint8: channel 0 of the file (masks whose grey value is replicated in RGB)."""
    array = read_channels(path)
    return array if array.ndim == 2 else np.ascontiguousarray(array[..., 0])


def squash_rgb(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to ``size`` x ``size`` without keeping the aspect ratio (area interpolation)."""
    if image.shape[0] == size and image.shape[1] == size:
        return np.ascontiguousarray(image)
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def squash_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a label map to ``size`` x ``size`` with nearest neighbour."""
    if mask.shape[0] == size and mask.shape[1] == size:
        return np.ascontiguousarray(mask)
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


def grey_lut(values: dict[int, int], ignore_index: int = 255) -> np.ndarray:
    """A 256-entry lookup table: grey value -> class id, everything else -> ignore."""
    lut = np.full(256, ignore_index, dtype=np.uint8)
    for grey, class_id in values.items():
        lut[grey] = class_id
    return lut


def colour_to_class(rgb: np.ndarray, colours: dict[tuple[int, int, int], int],
                    ignore_index: int = 255) -> tuple[np.ndarray, set[tuple[int, int, int]]]:
    """Map an (H, W, 3) colour-coded mask to class ids; returns (mask, unknown colours)."""
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    code = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
    out = np.full(code.shape, ignore_index, dtype=np.uint8)
    known = np.zeros(code.shape, dtype=bool)
    for (r, g, b), class_id in colours.items():
        hit = code == ((r << 16) | (g << 8) | b)
        out[hit] = class_id
        known |= hit
    unknown = {((int(c) >> 16) & 255, (int(c) >> 8) & 255, int(c) & 255)
               for c in np.unique(code[~known])}
    return out, unknown
