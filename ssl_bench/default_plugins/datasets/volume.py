"""Shared CT volume reading: NIfTI loading, the MONAI BTCV preprocessing recipe, axial slicing
and the on-disk volume cache used by the ``btcv``, ``msd`` and ``amos`` readers.

Sources of the facts used here:

* The preprocessing recipe is the MONAI BTCV one (Project-MONAI/research-contributions,
  ``UNETR/BTCV/utils/data_utils.py``): LoadImage,
  EnsureChannelFirst, ``Orientation("RAS")``, ``Spacing(1.5, 1.5, 2.0)`` with bilinear
  interpolation for the image and nearest for the label, ``ScaleIntensityRange(a_min=-175,
  a_max=250, b_min=0, b_max=1, clip=True)``. The random crops/flips of that recipe are training
  augmentations and are not part of reading.
* Non-CT Decathlon tasks (MRI) have no Hounsfield scale; for them the intensity is scaled by
  the 0.5 / 99.5 percentiles of the volume, as nnU-Net's non-CT normalisation clips to
  percentiles (MIC-DKFZ/nnUNet ``preprocessing/normalization``).
* Multi-channel (4-D) Decathlon images keep their first channel (``modality`` "0").
* NIfTI axis codes (nibabel "Coordinate systems" docs): in RAS+ the first voxel axis increases
  towards the subject's Right, the second towards Anterior, the third towards Superior.

Slices are shown in the radiological display convention used by clinical viewers: slice ``k``
is the ``k``-th axial plane from inferior to superior; row 0 is the most anterior row and
column 0 the subject's right side. For a RAS array ``v[x, y, z]`` of shape (X, Y, Z) this is
``frame[z, r, c] = v[X - 1 - c, Y - 1 - r, z]``.

Volume cache: the preprocessed volume (RAS, resampled, windowed; uint8 image 0..255 and uint8
label) is stored as one compressed ``.npz`` under ``<cache_dir>/volumes/<dataset>/``, keyed by
the SHA-256 of both files' contents, the target spacing, the intensity window and
:data:`RECIPE_VERSION`; it is written atomically, so a later load never sees half a file and
does no MONAI work.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, field_validator

from ssl_bench import atomic
from ssl_bench.api import SPLITS, Dataset, Unit, UnitData
from ssl_bench.errors import DataError

#: bump when the preprocessing changes what a cached volume holds
RECIPE_VERSION = "1"
NIFTI_SUFFIXES = (".nii.gz", ".nii")
Intensity = Literal["window", "percentile"]
_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


def _floats(value: Any) -> Any:
    """Accept ``"1.5,1.5,2.0"`` / ``"1.5x1.5x2"`` (the CLI passes strings) as well as tuples."""
    if isinstance(value, str):
        parts = [p for p in re.split(r"[,x\s]+", value.strip().strip("()[]")) if p]
        return tuple(float(p) for p in parts)
    return value


class VolumeOptions(BaseModel):
    """Reader options shared by the CT readers."""

    model_config = ConfigDict(extra="forbid")

    #: target voxel spacing in mm (x, y, z) after resampling (MONAI BTCV recipe: 1.5, 1.5, 2.0)
    spacing: tuple[float, float, float] = (1.5, 1.5, 2.0)
    #: HU window mapped to 0..1 and clipped (MONAI BTCV recipe: -175..250)
    hu_window: tuple[float, float] = (-175.0, 250.0)

    @field_validator("spacing", "hu_window", mode="before")
    @classmethod
    def _parse_text(cls, value: Any) -> Any:
        return _floats(value)

    @field_validator("spacing")
    @classmethod
    def _positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("every spacing must be > 0 mm, e.g. 1.5,1.5,2.0")
        return value

    @field_validator("hu_window")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        if value[0] >= value[1]:
            raise ValueError("the window must be LOW,HIGH with LOW < HIGH, e.g. -175,250")
        return value


@dataclass(frozen=True)
class VolumeCase:
    """One labelled volume on disk."""

    unit: Unit
    image: Path
    label: Path


@dataclass
class PreparedVolume:
    """A preprocessed volume in RAS voxel order."""

    image: np.ndarray  # (X, Y, Z) uint8, intensity window mapped to 0..255
    label: np.ndarray  # (X, Y, Z) uint8 class ids
    spacing: tuple[float, float, float]  # mm along x, y, z


# --------------------------------------------------------------------------------------
# files


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def is_hidden(path: Path) -> bool:
    """macOS resource forks (``._x.nii.gz``) and other dot files, skipped as nnU-Net does."""
    return path.name.startswith(".")


def nifti_stem(path: Path) -> str:
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.stem


def list_nifti(folder: Path) -> list[Path]:
    """The NIfTI files of a folder, sorted, without hidden/macOS files."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not is_hidden(p) and p.name.endswith(NIFTI_SUFFIXES))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; a one-line :class:`DataError` naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; restore it from the dataset archive") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg}); fix the file or "
                        "re-extract it from the dataset archive") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read ({one_line(exc)}); re-extract it") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object at the top level, found "
                        f"{type(data).__name__}; re-extract the file from the dataset archive")
    return data


def resolve_inside(root: Path, relative: str, manifest: Path) -> Path:
    """``root / relative`` resolved; a manifest path escaping ``root`` is a DataError."""
    if not isinstance(relative, str) or not relative:
        raise DataError(f"{manifest}: expected a file path string, found {relative!r}; fix the "
                        "manifest entry")
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise DataError(f"{manifest}: path {relative!r} escapes the dataset folder {base}; "
                        "manifest paths must point inside it (e.g. ./imagesTr/x.nii.gz)")
    return path


_FINGERPRINTS: dict[tuple[str, int, int], str] = {}


def file_fingerprint(path: Path) -> str:
    """SHA-256 of the file's content (memoised in-process by path, size and mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FINGERPRINTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        _FINGERPRINTS[key] = h.hexdigest()
    return _FINGERPRINTS[key]


T = TypeVar("T")


def _from_nifti_header(path: Path, read: Callable[[Any], T]) -> T:
    """``read(image)`` of the NIfTI file at ``path`` as nibabel loads it (the header; voxel data
    stays on disk), with a missing file or an unreadable header (nibabel raises many types) as a
    one-line :class:`DataError` naming the fix."""
    import nibabel as nib

    try:
        return read(nib.load(str(path)))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; restore it from the dataset archive") from None
    except Exception as exc:
        raise DataError(f"{path}: not a readable NIfTI file ({one_line(exc)}); re-download or "
                        "re-extract it") from None


def resampled_slices(path: Path, slice_spacing: float) -> int:
    """About how many axial slices the image at ``path`` has after the recipe's reorientation
    to RAS and resampling to ``slice_spacing`` mm between slices, read from the NIfTI header
    (no voxel data): the slices spanning the extent along the input axis that points
    superior-inferior at the new spacing, ``round((n - 1) * zoom / spacing) + 1`` (MONAI's
    ``Spacingd`` may round a case that sits on a half slice the other way)."""
    import nibabel as nib
    from nibabel.spatialimages import SpatialImage

    def slices(image: Any) -> int:
        if not isinstance(image, SpatialImage) or image.affine is None:
            raise TypeError(f"{type(image).__name__} holds no oriented voxel data")
        axes = nib.orientations.io_orientation(image.affine)
        axis = next(i for i, (out_axis, _flip) in enumerate(axes) if int(out_axis) == 2)
        zooms = image.header.get_zooms()
        return round((int(image.shape[axis]) - 1) * float(zooms[axis]) / slice_spacing) + 1

    return _from_nifti_header(path, slices)


def nifti_shape(path: Path) -> tuple[int, ...]:
    """The data shape from a NIfTI header (no voxel data read)."""
    from nibabel.dataobj_images import DataobjImage

    def shape(image: Any) -> tuple[int, ...]:
        if not isinstance(image, DataobjImage):
            raise TypeError(f"{type(image).__name__} holds no voxel data")
        return tuple(int(n) for n in image.shape)

    return _from_nifti_header(path, shape)


# --------------------------------------------------------------------------------------
# preprocessing


def _load_nifti(path: Path) -> Any:
    from monai.transforms import LoadImage

    if not path.is_file():
        raise DataError(f"{path}: file not found; restore it from the dataset archive")
    try:
        return LoadImage(image_only=True, reader="NibabelReader", dtype=np.float32)(str(path))
    except Exception as exc:  # truncated gzip (EOFError), zlib.error, bad header, ...
        raise DataError(f"{path}: cannot read the NIfTI volume ({one_line(exc)}); the file is "
                        "truncated or corrupt - re-download or re-extract it") from None


def preprocess(image_path: Path, label_path: Path, spacing: tuple[float, float, float],
               window: tuple[float, float], intensity: Intensity = "window") -> PreparedVolume:
    """Run the MONAI BTCV recipe on one image/label pair (see the module docstring)."""
    from monai.transforms import (
        Compose,
        EnsureChannelFirstd,
        Orientationd,
        ScaleIntensityRanged,
        ScaleIntensityRangePercentilesd,
        Spacingd,
    )

    image = _load_nifti(image_path)
    label = _load_nifti(label_path)
    if tuple(image.shape[:3]) != tuple(label.shape[:3]) or label.ndim != 3:
        raise DataError(f"{label_path}: label shape {tuple(label.shape)} differs from its image "
                        f"{image_path.name} {tuple(image.shape)}; pair each image with its own "
                        "label file")
    scale = (ScaleIntensityRanged(keys="image", a_min=window[0], a_max=window[1], b_min=0.0,
                                  b_max=1.0, clip=True)
             if intensity == "window" else
             ScaleIntensityRangePercentilesd(keys="image", lower=0.5, upper=99.5, b_min=0.0,
                                             b_max=1.0, clip=True))
    recipe = Compose([
        EnsureChannelFirstd(keys=["image", "label"]),
        Orientationd(keys=["image", "label"], axcodes="RAS", labels=_RAS_LABELS),
        Spacingd(keys=["image", "label"], pixdim=spacing, mode=("bilinear", "nearest"),
                 dtype=np.float32),
        scale,
    ])
    try:
        out = recipe({"image": image, "label": label})
    except Exception as exc:
        raise DataError(f"{image_path}: MONAI preprocessing failed ({one_line(exc)}); check the "
                        "NIfTI header (affine, pixdim) of the image and its label") from None
    img = out["image"].numpy()[0]  # first channel
    lab = out["label"].numpy()[0]
    if img.shape != lab.shape:
        raise DataError(f"{label_path}: label grid {lab.shape} differs from its image "
                        f"{img.shape} after resampling; the two files have different affines - "
                        "pair each image with its own label")
    if lab.min() < 0 or lab.max() > 255:
        raise DataError(f"{label_path}: label values {lab.min():g}..{lab.max():g} are outside "
                        "0..255; the file is not a class-id label map")
    return PreparedVolume(
        image=np.rint(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8),
        label=np.rint(lab).astype(np.uint8),
        spacing=tuple(float(s) for s in spacing),  # type: ignore[arg-type]
    )


def volume_cache_path(cache_root: Path, dataset_id: str, case: VolumeCase,
                      spacing: tuple[float, float, float], window: tuple[float, float],
                      intensity: Intensity) -> Path:
    key = "|".join([RECIPE_VERSION, file_fingerprint(case.image), file_fingerprint(case.label),
                    ",".join(f"{s:g}" for s in spacing),
                    ",".join(f"{w:g}" for w in window) if intensity == "window" else "pct"])
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    return cache_root / "volumes" / dataset_id / f"{case.unit.id}-{digest}.npz"


def _read_cached(path: Path) -> PreparedVolume | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            return PreparedVolume(image=npz["image"], label=npz["label"],
                                  spacing=tuple(float(s) for s in npz["spacing"]))  # type: ignore[arg-type]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None  # unreadable entry: recompute and overwrite


def _write_cached(path: Path, volume: PreparedVolume) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, image=volume.image, label=volume.label,
                        spacing=np.asarray(volume.spacing, dtype=np.float64))
    atomic.write_bytes(path, buf.getvalue())


def prepared_volume(cache_root: Path, dataset_id: str, case: VolumeCase,
                    spacing: tuple[float, float, float], window: tuple[float, float],
                    intensity: Intensity = "window") -> PreparedVolume:
    """The preprocessed volume of ``case``, from the volume cache or computed and cached."""
    for path in (case.image, case.label):
        if not path.is_file():
            raise DataError(f"{path}: file not found; restore it from the dataset archive")
    path = volume_cache_path(cache_root, dataset_id, case, spacing, window, intensity)
    cached = _read_cached(path)
    if cached is not None:
        return cached
    volume = preprocess(case.image, case.label, spacing, window, intensity)
    _write_cached(path, volume)
    return volume


def to_slices(volume: PreparedVolume, size: int
              ) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Axial slices resized to ``size`` x ``size``: frames (D, size, size, 3) uint8,
    masks (D, size, size) uint8 and the (row, col, slice) spacing in mm after resizing."""
    x, y, _ = volume.image.shape
    # RAS (x, y, z) -> radiological (z, row, col): flip x and y, then put z first
    image = np.ascontiguousarray(volume.image[::-1, ::-1, :].transpose(2, 1, 0))
    label = np.ascontiguousarray(volume.label[::-1, ::-1, :].transpose(2, 1, 0))
    if (y, x) != (size, size):
        img_t = torch.from_numpy(image).float()[:, None]
        img_t = F.interpolate(img_t, size=(size, size), mode="bilinear", align_corners=False)
        image = img_t[:, 0].round_().clamp_(0, 255).to(torch.uint8).numpy()
        lab_t = torch.from_numpy(label)[:, None].float()
        lab_t = F.interpolate(lab_t, size=(size, size), mode="nearest-exact")
        label = lab_t[:, 0].to(torch.uint8).numpy()
    frames = np.repeat(image[..., None], 3, axis=-1)
    sx, sy, sz = volume.spacing
    return frames, label, (sy * y / size, sx * x / size, sz)


# --------------------------------------------------------------------------------------
# the shared reader


class VolumeDataset(Dataset):
    """A reader of labelled NIfTI volumes; subclasses implement :meth:`scan`.

    ``fps`` is ignored (a volume has no frame rate)."""

    Options = VolumeOptions

    #: intensity normalisation: the HU window (CT) or percentiles (other modalities)
    intensity: Intensity = "window"

    @abstractmethod
    def scan(self) -> tuple[list[VolumeCase], list[str]]:
        """The cases found on disk and every layout problem (one line each). A fatal layout
        problem (e.g. missing folder) gives no cases and one problem."""

    def cases(self) -> list[VolumeCase]:
        if getattr(self, "_cases", None) is None:
            cases, problems = self.scan()
            if problems:
                raise DataError(problems[0] if len(problems) == 1 else
                                f"{problems[0]} (and {len(problems) - 1} more problem(s); run "
                                f"`ssl-bench data check {self.meta.id} {self.root}`)")
            self._cases: list[VolumeCase] | None = cases
        assert self._cases is not None
        return self._cases

    def units(self) -> list[Unit]:
        return [case.unit for case in self.cases()]

    def case(self, unit: Unit) -> VolumeCase:
        for case in self.cases():
            if case.unit.id == unit.id:
                return case
        raise DataError(f"{self.meta.id} at {self.root}: no volume {unit.id!r}; use a unit "
                        "returned by units()")

    def prepared(self, case: VolumeCase) -> PreparedVolume:
        options: VolumeOptions = self.options  # type: ignore[assignment]
        volume = prepared_volume(self.cache_dir, self.meta.id, case, options.spacing,
                                 options.hu_window, self.intensity)
        top = int(volume.label.max()) if volume.label.size else 0
        if top >= len(self.meta.classes):
            raise DataError(f"{case.label}: label value {top} is not in the "
                            f"{len(self.meta.classes)} {self.meta.id} classes "
                            f"(0..{len(self.meta.classes) - 1}); use the dataset's own label "
                            "files")
        return volume

    def frame_count(self, unit: Unit, fps: float = 1.0) -> int:
        """About the axial slices :meth:`load` returns, from the NIfTI header
        (:func:`resampled_slices`; no voxel data read, no file hashed)."""
        options: VolumeOptions = self.options  # type: ignore[assignment]
        return resampled_slices(self.case(unit).image, options.spacing[2])

    def load(self, unit: Unit, size: int, fps: float = 1.0) -> UnitData:
        volume = self.prepared(self.case(unit))
        frames, masks, spacing = to_slices(volume, size)
        return UnitData(unit=unit, frames=frames, masks=masks, spacing=spacing)

    def check(self) -> list[str]:
        """Every layout problem, then every volume that does not read, one line each."""
        cases, problems = self.scan()
        for split in SPLITS:
            if cases and not any(c.unit.split == split for c in cases):
                problems.append(f"{self.meta.id} at {self.root}: the {split} split is empty; "
                                "add the missing cases (see the reader's docstring for the "
                                "split lists)")
        for case in cases:
            try:
                image_shape = nifti_shape(case.image)
                label_shape = nifti_shape(case.label)
                if image_shape[:3] != label_shape[:3]:
                    raise DataError(f"{case.label}: label shape {label_shape} differs from its "
                                    f"image {case.image.name} {image_shape}; pair each image "
                                    "with its own label file")
                self.prepared(case)
            except DataError as exc:
                problems.append(str(exc))
        return problems

    def info(self) -> dict[str, Any]:
        info = super().info()
        info["layout"] = getattr(self, "layout", None)
        info["spacing_mm"] = list(self.options.spacing)  # type: ignore[attr-defined]
        info["hu_window"] = list(self.options.hu_window)  # type: ignore[attr-defined]
        return info
