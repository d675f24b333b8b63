"""Synthetic abdominal CT in the raw BTCV layout (the CT part of the embedded default suite).

Writes ``RawData/Training/img/img00NN.nii.gz`` and ``RawData/Training/label/label00NN.nii.gz``
for the 30 real BTCV training ids (0001-0010, 0021-0040) plus two unlabelled
``RawData/Testing/img`` volumes (0061, 0062), deterministically in ``seed``: int16 HU volumes and
uint8 label volumes with the BTCV label ids, stored like many DICOM conversions with an LPS
voxel order (affine ``diag(-dx, -dy, dz)``, spacing in the header), so readers must reorient.

Anatomy, in RAS+ world mm around the body centre (x towards the patient's right, y anterior,
z superior; textbook abdominal cross-section anatomy, e.g. Netter's Atlas plates 263-269,
and the relative positions of the 13 BTCV organ labels):

* body: an elliptic cylinder (~31 x 22 cm) of subcutaneous fat (-100 HU) around an abdominal
  wall muscle ring (50 HU), a bowel/mesenteric fat mixture inside and air (-1000 HU) outside;
  a vertebral body (700 HU) with spinal canal and paraspinal muscles posteriorly;
* contrast-enhanced CT in the portal venous phase (the phase of most BTCV scans; typical
  attenuations from the radiology literature, e.g. Bae, Radiology 2010 256:32-61 "Intravenous
  contrast medium administration and scan timing at CT", and Federle's Diagnostic Imaging:
  Abdomen): each organ has an unenhanced value plus an enhancement that is scaled per patient
  (contrast dose and timing). Enhanced means: liver (6, ~115 HU) right-anterior and large,
  reaching across the midline with its left lobe; gallbladder (4, ~10 HU, bile does not
  enhance) under the liver; spleen (1, ~120 HU) left-posterior; kidneys (2 right, 3 left, cortex
  ~180 HU) posterior on either side of the spine, the right one lower; adrenals (12, 13, ~60 HU)
  above the kidneys; aorta (8, ~190 HU) anterior-left of the spine; IVC (9, ~140 HU) right of the
  aorta; stomach (7, enhancing wall ~80 HU around water-like content ~15 HU, with a gas cap)
  left-anterior; pancreas (11, ~90 HU) across the middle from the head (right) to the tail (at
  the splenic hilum); the splenic vein behind it joining the portal vein towards the liver hilum
  (10, ~170 HU); the oesophagus (5, ~45 HU) left-anterior of the spine in the top slices.
* per patient: body size, in-plane rotation, global and per-organ shifts and scales, the
  enhancement factor (0.75..1.15) and a per-organ offset (+-8 HU), a smooth random deformation
  of every organ outline, and Gaussian noise (12 HU).

Sizes: ``small`` (40 x 40 x 12 voxels of 9 x 9 x 16 mm, for tests) and ``default``
(112 x 112 x 40 voxels of 3.5 x 3.5 x 5 mm).
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ssl_bench import atomic

TRAINING_IDS = tuple(f"{n:04d}" for n in [*range(1, 11), *range(21, 41)])
TESTING_IDS = ("0061", "0062")

SPLEEN, R_KIDNEY, L_KIDNEY, GALLBLADDER, ESOPHAGUS, LIVER, STOMACH = 1, 2, 3, 4, 5, 6, 7
AORTA, IVC, PORTAL_SPLENIC, PANCREAS, R_ADRENAL, L_ADRENAL = 8, 9, 10, 11, 12, 13


@dataclass(frozen=True)
class SynthSize:
    pixels: int  # in-plane voxels per side
    pixel_mm: float
    slices: int
    slice_mm: float


SIZES = {
    "small": SynthSize(pixels=40, pixel_mm=9.0, slices=12, slice_mm=16.0),
    "default": SynthSize(pixels=112, pixel_mm=3.5, slices=40, slice_mm=5.0),
}


class _Patient:
    """World coordinates of every voxel and the per-patient random variation."""

    def __init__(self, rng: np.random.Generator, size: SynthSize) -> None:
        self.rng = rng
        n, nz = size.pixels, size.slices
        self.affine = np.diag([-size.pixel_mm, -size.pixel_mm, size.slice_mm, 1.0])
        self.affine[:3, 3] = [size.pixel_mm * (n - 1) / 2, size.pixel_mm * (n - 1) / 2,
                              -size.slice_mm * (nz - 1) / 2]
        # voxel (i, j, k) -> world; LPS voxel order, so x falls with i and y with j
        x = (self.affine[0, 3] - size.pixel_mm * np.arange(n, dtype=np.float32))[:, None, None]
        y = (self.affine[1, 3] - size.pixel_mm * np.arange(n, dtype=np.float32))[None, :, None]
        z = (self.affine[2, 3] + size.slice_mm * np.arange(nz, dtype=np.float32))[None, None, :]
        angle = np.deg2rad(rng.uniform(-6, 6))
        shift = rng.normal(0.0, 5.0, size=3)
        # patient coordinates: the world rotated in-plane and shifted
        self.x = np.cos(angle) * x - np.sin(angle) * y - shift[0]
        self.y = np.sin(angle) * x + np.cos(angle) * y - shift[1]
        self.z = np.broadcast_to(z - shift[2], (1, 1, nz)).astype(np.float32)
        self.shape = (n, n, nz)
        self.sx = rng.uniform(0.9, 1.1)  # body width factor
        self.sy = rng.uniform(0.9, 1.1)  # body depth factor
        self.fields = [self.smooth_noise() for _ in range(3)]

    def smooth_noise(self, grid: tuple[int, int, int] = (6, 6, 5)) -> np.ndarray:
        coarse = torch.from_numpy(self.rng.uniform(-1, 1, size=(1, 1, *grid)).astype(np.float32))
        fine = F.interpolate(coarse, size=self.shape, mode="trilinear", align_corners=True)
        return fine[0, 0].numpy()

    def ellipsoid(self, centre: tuple[float, float, float], radii: tuple[float, float, float],
                  wobble: float = 0.12, field: int = 0, jitter: float = 4.0) -> np.ndarray:
        scale = 1.0 + self.rng.normal(0.0, 0.07)
        cx, cy, cz = (c + self.rng.normal(0.0, jitter) for c in centre)
        rx, ry, rz = radii
        d = (((self.x - cx * self.sx) / (rx * scale * self.sx)) ** 2
             + ((self.y - cy * self.sy) / (ry * scale * self.sy)) ** 2
             + ((self.z - cz) / (rz * scale)) ** 2)
        return d <= (1.0 + wobble * self.fields[field % 3]) ** 2

    def tube(self, a: tuple[float, float, float], b: tuple[float, float, float], radius: float,
             jitter: float = 3.0) -> np.ndarray:
        """Voxels within ``radius`` mm of the segment a-b (a capsule)."""
        off = self.rng.normal(0.0, jitter, size=3)
        pa = np.array([a[0] * self.sx, a[1] * self.sy, a[2]]) + off
        pb = np.array([b[0] * self.sx, b[1] * self.sy, b[2]]) + off
        ab = pb - pa
        t = ((self.x - pa[0]) * ab[0] + (self.y - pa[1]) * ab[1] + (self.z - pa[2]) * ab[2])
        t = np.clip(t / float(ab @ ab), 0.0, 1.0)
        d2 = ((self.x - pa[0] - t * ab[0]) ** 2 + (self.y - pa[1] - t * ab[1]) ** 2
              + (self.z - pa[2] - t * ab[2]) ** 2)
        r = radius * (1.0 + self.rng.normal(0.0, 0.08))
        return d2 <= r * r

    def body(self, inset: float = 0.0) -> np.ndarray:
        ax, ay = 155.0 * self.sx - inset, 110.0 * self.sy - inset
        # the abdomen narrows slightly towards the pelvis
        taper = 1.0 + 0.04 * self.z / 100.0
        return (self.x / (ax * taper)) ** 2 + (self.y / (ay * taper)) ** 2 <= 1.0


def synth_case(rng: np.random.Generator, size: SynthSize) -> tuple[np.ndarray, np.ndarray,
                                                                      np.ndarray]:
    """One synthetic patient: (HU int16 volume, uint8 label volume, affine)."""
    p = _Patient(rng, size)
    hu = np.full(p.shape, -1000.0, dtype=np.float32)
    label = np.zeros(p.shape, dtype=np.uint8)

    fat_mm = rng.uniform(12.0, 28.0)
    outer = p.body()
    wall = p.body(inset=fat_mm)
    inner = p.body(inset=fat_mm + 10.0)
    hu[outer] = -100.0  # subcutaneous fat
    hu[wall] = 50.0  # abdominal wall muscle
    bowel = p.smooth_noise((14, 14, 10)) > rng.uniform(-0.35, -0.15)
    hu[inner] = np.where(bowel[inner], 25.0, -90.0)  # bowel loops in mesenteric fat

    # spine and back muscles (background label)
    for side in (-1.0, 1.0):
        hu[p.ellipsoid((35.0 * side, -92.0, 0.0), (24.0, 17.0, 400.0), wobble=0.05) & outer] = 50.0
    hu[p.ellipsoid((0.0, -72.0, 0.0), (20.0, 17.0, 400.0), wobble=0.03, jitter=1.0)] = 700.0
    hu[p.ellipsoid((0.0, -98.0, 0.0), (9.0, 8.0, 400.0), wobble=0.0, jitter=0.5)] = 20.0

    def paint(mask: np.ndarray, organ: int, value: float) -> None:
        mask = mask & inner
        hu[mask] = value
        label[mask] = organ

    enhancement = rng.uniform(0.75, 1.15)  # contrast dose and timing of this patient

    def organ_hu(unenhanced: float, enhanced: float) -> float:
        """Attenuation of one organ: unenhanced + scaled enhancement + a small offset."""
        return unenhanced + enhancement * (enhanced - unenhanced) + rng.uniform(-8.0, 8.0)

    paint(p.ellipsoid((55.0, 5.0, 40.0), (80.0, 80.0, 62.0), field=0)
          | p.ellipsoid((-10.0, 45.0, 55.0), (45.0, 28.0, 30.0), field=0), LIVER,
          organ_hu(60.0, 115.0))
    paint(p.ellipsoid((52.0, 38.0, -5.0), (15.0, 17.0, 28.0), field=1), GALLBLADDER,
          organ_hu(10.0, 10.0))
    paint(p.ellipsoid((-82.0, -40.0, 45.0), (24.0, 36.0, 45.0), field=2), SPLEEN,
          organ_hu(50.0, 120.0))
    stomach = p.ellipsoid((-48.0, 28.0, 45.0), (38.0, 32.0, 42.0), field=1)
    paint(stomach, STOMACH, organ_hu(40.0, 80.0))  # enhancing wall
    content = stomach & p.ellipsoid((-48.0, 28.0, 45.0), (30.0, 24.0, 34.0), field=1,
                                    jitter=0.0) & inner
    hu[content] = organ_hu(15.0, 15.0)  # water-like content, still stomach
    gas = stomach & (p.y > 28.0 * p.sy + 20.0) & inner
    hu[gas] = -850.0  # anterior gas cap, still stomach
    paint(p.ellipsoid((66.0, -50.0, -28.0), (26.0, 23.0, 52.0), field=2), R_KIDNEY,
          organ_hu(35.0, 180.0))
    paint(p.ellipsoid((-66.0, -50.0, -15.0), (26.0, 23.0, 52.0), field=0), L_KIDNEY,
          organ_hu(35.0, 180.0))
    paint(p.ellipsoid((36.0, -45.0, 38.0), (6.0, 11.0, 14.0), wobble=0.2, field=1), R_ADRENAL,
          organ_hu(30.0, 60.0))
    paint(p.ellipsoid((-36.0, -45.0, 42.0), (6.0, 11.0, 14.0), wobble=0.2, field=2), L_ADRENAL,
          organ_hu(30.0, 60.0))
    paint(p.tube((25.0, -8.0, 5.0), (-62.0, -22.0, 18.0), 11.0)
          | p.ellipsoid((28.0, -10.0, 2.0), (17.0, 14.0, 16.0), field=1), PANCREAS,
          organ_hu(40.0, 90.0))
    paint(p.tube((-68.0, -32.0, 17.0), (8.0, -22.0, 12.0), 4.5)
          | p.tube((8.0, -22.0, 12.0), (42.0, -2.0, 34.0), 6.5), PORTAL_SPLENIC,
          organ_hu(40.0, 170.0))
    paint(p.tube((-14.0, -46.0, -400.0), (-14.0, -46.0, 400.0), 11.0, jitter=2.0), AORTA,
          organ_hu(40.0, 190.0))
    paint(p.tube((22.0, -40.0, -400.0), (22.0, -40.0, 78.0), 11.0, jitter=2.0), IVC,
          organ_hu(40.0, 140.0))
    paint(p.tube((-14.0, -38.0, 72.0), (-10.0, -40.0, 400.0), 9.0, jitter=2.0), ESOPHAGUS,
          organ_hu(40.0, 45.0))

    hu += rng.normal(0.0, 12.0, size=hu.shape).astype(np.float32)
    hu = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    return hu, label, p.affine


def _nifti_gz(data: np.ndarray, affine: np.ndarray) -> bytes:
    import nibabel as nib

    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units("mm")
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    return gzip.compress(image.to_bytes(), compresslevel=6, mtime=0)  # mtime 0: deterministic


def write_btcv_synthetic(root: Path, size: str = "default", seed: int = 0) -> None:
    """Write the synthetic BTCV raw layout under ``root`` (deterministic in ``seed``)."""
    if size not in SIZES:
        raise ValueError(f"unknown synthetic size {size!r}; use one of {sorted(SIZES)}")
    spec = SIZES[size]
    training = root / "RawData" / "Training"
    for cid in TRAINING_IDS:
        rng = np.random.default_rng([seed, int(cid)])
        hu, label, affine = synth_case(rng, spec)
        atomic.write_bytes(training / "img" / f"img{cid}.nii.gz", _nifti_gz(hu, affine))
        atomic.write_bytes(training / "label" / f"label{cid}.nii.gz", _nifti_gz(label, affine))
    for cid in TESTING_IDS:
        rng = np.random.default_rng([seed, int(cid)])
        hu, _, affine = synth_case(rng, spec)
        atomic.write_bytes(root / "RawData" / "Testing" / "img" / f"img{cid}.nii.gz",
                           _nifti_gz(hu, affine))
