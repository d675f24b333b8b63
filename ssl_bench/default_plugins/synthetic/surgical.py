"""Synthetic Cholec80- and CholecSeg8k-layout datasets (deterministic in ``seed``).

Both imitate a laparoscopic cholecystectomy seen through a moving endoscope: liver,
gallbladder, fat, abdominal wall and GI tract, with instruments entering from fixed trocar
points and moving smoothly (their tips follow sums of slow sinusoids, so consecutive frames
differ by small displacements and optical flow is meaningful).

**Cholec80 layout** (reader: ``datasets/cholec80.py``): ``videos/videoNN.mp4`` (H.264, 25 fps;
all 80 videos of 30-80 s at 128x72 for ``default``, 16 videos of 8-11 s at 64x36 covering
every split for ``small``), ``phase_annotations/videoNN-phase.txt`` (``Frame\tPhase``, one row per
frame, phase names) and ``tool_annotations/videoNN-tool.txt`` (``Frame`` + the 7 tools, rows at
frames 0, 25, 50, ...). The 7 phases follow the Cholec80 order; each video draws its phase
durations as typical shares of a procedure times a log-normal factor (sigma
``PHASE_SPREAD``), so, as in Cholec80, a phase can take half or twice its usual share and the
position in the video alone tells the phase only roughly. What is visible depends on the
phase:

====  =====================  =============================================================
id    phase                  visible
====  =====================  =============================================================
0     Preparation            grasper (+ hook now and then); gallbladder covered by fat
1     CalotTriangleDissect.  grasper + hook; the fat over the gallbladder neck is dissected
                             away; light smoke from the hook
2     ClippingCutting        grasper, clip applier then scissors; clips appear, duct is cut
3     GallbladderDissection  grasper + hook; gallbladder lifts off a raw liver bed; smoke
4     GallbladderPackaging   grasper + specimen bag; the gallbladder shrinks into the bag
5     CleaningCoagulation    bipolar, irrigator; liver bed with bleeding spots; dense smoke
6     GallbladderRetraction  grasper + specimen bag moving out of view
====  =====================  =============================================================

Tissues are textured (multi-scale noise: liver lobules, lobulated fat, mottled gallbladder
wall, raw liver bed, plastic folds of the bag; vessels on wall, liver and gallbladder), and
the textures move with the camera. Instruments look like their real counterparts: insulated
black shafts with a specular line and metal ends (grasper jaws, L-hook, curved gold-coloured
scissor blades), an all-metal clip applier holding a clip, a grey bipolar forceps with blue
jaws, a white irrigation tube with suction holes; shafts are about 5 % of the frame wide, so
they stay visible at the encoders' input size. Which instruments are in view is thus the
main phase cue, with the tissue state (fat, clips, lifted gallbladder, bag). Lighting varies
between procedures (light gain 0.75-1.15 and white balance +-8 % per channel per video) and
within one (slow drift +-12 %, flicker +-4 %); electrocautery smoke (hook in phases 1 and 3,
bipolar in 5) washes out part of the view. Camera motion is a slow pan with per-phase
amplitude. The tool file is the exact presence of each drawn tool at its frame.

**CholecSeg8k layout** (reader: ``datasets/cholecseg8k.py``): the 17 real video ids, clips
``videoNN/videoNN_SSSSS/`` of consecutive 25-fps frames ``frame_K_endo.png`` with
``_watershed_mask`` (class grey value in 3 channels), ``_color_mask`` (class colour) and
``_mask`` (grey value, 1 channel); a 1-px white (255) frame border like the real masks' edges,
and every 7th frame's watershed/colour masks saved as RGBA (alpha 255). Images are rendered
from the label map with a per-class tissue colour, smooth shading and mild noise.

Output is written into a temporary sibling folder and renamed onto ``root`` at the end, so a
crash never leaves a half-written dataset under ``root``.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import cv2
import numpy as np

PHASES = ("Preparation", "CalotTriangleDissection", "ClippingCutting", "GallbladderDissection",
          "GallbladderPackaging", "CleaningCoagulation", "GallbladderRetraction")
TOOLS = ("Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag")
GRASPER, BIPOLAR, HOOK, SCISSORS, CLIPPER, IRRIGATOR, BAG = range(7)
#: typical share of each phase in a procedure (rough Cholec80 statistics)
PHASE_SHARE = (0.06, 0.33, 0.09, 0.24, 0.07, 0.12, 0.09)
#: sigma of the log-normal factor on each phase's share in one video (Cholec80's phase
#: durations vary between procedures about 2x either way around their median)
PHASE_SPREAD = 0.5
#: (tool, share of the phase it is present, where in the phase it starts: 0 early .. 1 late)
PHASE_TOOLS: dict[int, tuple[tuple[int, float, float], ...]] = {
    0: ((GRASPER, 0.9, 0.5), (HOOK, 0.35, 1.0)),
    1: ((GRASPER, 0.95, 0.5), (HOOK, 0.9, 0.5)),
    2: ((GRASPER, 0.9, 0.5), (CLIPPER, 0.55, 0.0), (SCISSORS, 0.35, 1.0)),
    3: ((GRASPER, 0.95, 0.5), (HOOK, 0.85, 0.5)),
    4: ((GRASPER, 0.9, 0.5), (BAG, 1.0, 0.0)),
    5: ((BIPOLAR, 0.6, 0.2), (IRRIGATOR, 0.5, 0.8), (GRASPER, 0.4, 0.5)),
    6: ((GRASPER, 0.9, 0.5), (BAG, 0.9, 0.0)),
}
#: CholecSeg8k: the 17 video ids and the grey value / colour of each of the 13 classes
SEG_VIDEOS = (1, 9, 12, 17, 18, 20, 24, 25, 26, 27, 28, 35, 37, 43, 48, 52, 55)
SEG_GREYS = (50, 11, 21, 13, 12, 31, 23, 24, 25, 32, 22, 33, 5)
SEG_COLOURS = ((127, 127, 127), (210, 140, 140), (255, 114, 114), (231, 70, 156),
               (186, 183, 75), (170, 255, 0), (255, 85, 0), (255, 0, 0), (255, 255, 0),
               (169, 255, 184), (255, 160, 165), (0, 50, 128), (111, 74, 0))
#: tissue colour (RGB) rendered for each CholecSeg8k class
SEG_TISSUE = ((6, 4, 4), (196, 142, 132), (128, 38, 34), (186, 118, 128), (222, 196, 106),
              (150, 152, 158), (222, 184, 170), (110, 6, 8), (206, 192, 146), (196, 198, 206),
              (128, 146, 74), (72, 58, 104), (176, 132, 110))


@dataclass(frozen=True)
class CholecSize:
    videos: tuple[int, ...]
    width: int
    height: int
    min_seconds: float
    max_seconds: float
    crf: int


CHOLEC_SIZES = {
    # small (tests, smoke runs): 16 videos that still cover every split of both schemes
    # (40/8/32: 8 train, 4 val, 4 test; 40/40: 6 train, 2 val, 8 test)
    "small": CholecSize(videos=(1, 2, 3, 4, 5, 6, 33, 34, 41, 42, 43, 44, 49, 50, 51, 52),
                        width=64, height=36, min_seconds=8, max_seconds=11, crf=30),
    "default": CholecSize(videos=tuple(range(1, 81)), width=128, height=72, min_seconds=30,
                          max_seconds=80, crf=30),
}


@dataclass(frozen=True)
class SegSize:
    width: int
    height: int
    clips_per_video: int
    frames_per_clip: int


SEG_SIZES = {
    "small": SegSize(width=64, height=36, clips_per_video=1, frames_per_clip=3),
    "default": SegSize(width=160, height=90, clips_per_video=2, frames_per_clip=40),
}


def _check_size(size: str, table: Mapping[str, object]) -> None:
    if size not in table:
        raise ValueError(f"unknown synthetic size {size!r}; expected one of {sorted(table)}")


@contextlib.contextmanager
def staged_dir(root: Path) -> Iterator[Path]:
    """A temporary sibling folder that replaces ``root`` when the block succeeds."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{root.name}.", dir=root.parent))
    try:
        yield tmp
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def smooth_path(rng: np.random.Generator, n: int, period_frames: float, amplitude: float
                ) -> np.ndarray:
    """(n,) smooth signal: three random sinusoids with periods around ``period_frames``."""
    t = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    for _ in range(3):
        period = period_frames * rng.uniform(0.5, 1.5)
        out += np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
    return amplitude * out / 3


def smooth_field(rng: np.random.Generator, height: int, width: int, cells: int = 4) -> np.ndarray:
    """(height, width) float32 low-frequency noise in about [-1, 1]."""
    coarse = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)


# --------------------------------------------------------------------------------------
# Cholec80


def phase_lengths(rng: np.random.Generator, total: int) -> list[int]:
    """Frames per phase (each at least 1 s), summing to ``total``: each phase's typical share
    times a log-normal factor (``PHASE_SPREAD``), so phase lengths vary between videos by
    about 2x either way, as they do in Cholec80."""
    share = np.asarray(PHASE_SHARE) * rng.lognormal(0.0, PHASE_SPREAD, size=len(PHASE_SHARE))
    share /= share.sum()
    lengths = np.maximum(25, np.floor(share * total)).astype(int)
    lengths[int(np.argmax(lengths))] += total - lengths.sum()  # the longest absorbs rounding
    return [int(x) for x in lengths]


def tool_presence(rng: np.random.Generator, phases: np.ndarray) -> np.ndarray:
    """(N, 7) bool: each tool present over one run inside each phase that uses it."""
    n = len(phases)
    present = np.zeros((n, len(TOOLS)), dtype=bool)
    starts = np.flatnonzero(np.r_[True, phases[1:] != phases[:-1]])
    ends = np.r_[starts[1:], n]
    for start, end in zip(starts, ends):
        length = end - start
        for tool, share, where in PHASE_TOOLS[int(phases[start])]:
            run = max(1, int(round(length * min(1.0, share * rng.uniform(0.85, 1.1)))))
            slack = length - run
            offset = int(round(slack * np.clip(where + rng.uniform(-0.25, 0.25), 0, 1)))
            present[start + offset:start + offset + run, tool] = True
    return present


def texture(rng: np.random.Generator, height: int, width: int, rgb: tuple[int, ...],
            contrast: float, cells: tuple[int, ...] = (6, 18, 40)) -> np.ndarray:
    """(height, width, 3) float32 tissue texture: ``rgb`` modulated by noise at several
    scales (lobules, mottling, grain) and varied by up to 12 % per video."""
    field = np.zeros((height, width), np.float32)
    for k, c in enumerate(cells):
        field += smooth_field(rng, height, width, c) * (0.6 ** k)
    field /= np.abs(field).max() + 1e-6
    colour = np.asarray(rgb, np.float32) * rng.uniform(0.88, 1.12, 3).astype(np.float32)
    return colour * (1 + contrast * field)[..., None]


def draw_vessels(rng: np.random.Generator, img: np.ndarray, count: int,
                 rgb: tuple[int, int, int], width: int) -> None:
    """Thin branching vessels (random walks) drawn into ``img`` in place."""
    h, w = img.shape[:2]
    for _ in range(count):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        angle = rng.uniform(0, 2 * math.pi)
        pts = []
        for _ in range(12):
            pts.append((x, y))
            angle += rng.normal(0, 0.45)
            x, y = x + math.cos(angle) * w / 30, y + math.sin(angle) * w / 30
        cv2.polylines(img, [np.asarray(pts, np.int32)], False, rgb, width, cv2.LINE_AA)


@dataclass
class VideoScene:
    """Per-video appearance: where things are, their textures and the lighting."""

    background: np.ndarray  # (H + 2m, W + 2m, 3) uint8 liver / wall / fat texture
    margin: int
    gallbladder: tuple[float, float, float, float]  # cx, cy, a, b in view pixels
    gb_colour: tuple[int, int, int]
    entries: np.ndarray  # (7, 2) trocar entry point of each tool
    targets: np.ndarray  # (7, 2) mean tip position of each tool
    layers: dict[str, np.ndarray]  # uint8 textures (same size as background) of the overlays
    light: np.ndarray  # (3,) per-video light gain per channel (intensity x white balance)


def make_scene(rng: np.random.Generator, width: int, height: int) -> VideoScene:
    m = max(4, width // 10)
    bw, bh = width + 2 * m, height + 2 * m
    yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
    base = texture(rng, bh, bw, (196, 140, 130), 0.18)  # abdominal wall
    liver = texture(rng, bh, bw, (132, 40, 34), 0.3)
    edge = bh * rng.uniform(0.45, 0.6) + bh * 0.12 * np.sin(xx / bw * math.pi * rng.uniform(1, 2)
                                                              + rng.uniform(0, 6))
    is_liver = yy < edge
    base[is_liver] = liver[is_liver]
    fat = texture(rng, bh, bw, (220, 192, 104), 0.25, (10, 24, 48))
    fat_blob = (((xx - bw * rng.uniform(0.6, 0.9)) / (bw * 0.25)) ** 2
                + ((yy - bh * 0.95) / (bh * 0.25)) ** 2) < 1
    base[fat_blob] = fat[fat_blob]
    background = np.clip(base, 0, 255).astype(np.uint8)
    draw_vessels(rng, background, 5, (150, 50, 60), max(1, width // 128))
    shade = smooth_field(rng, bh, bw, 5)
    vignette = 1 - 0.45 * (((xx - bw / 2) / (bw / 2)) ** 2 + ((yy - bh / 2) / (bh / 2)) ** 2)
    gain = (1 + 0.12 * shade) * np.clip(vignette, 0.3, 1)
    background = np.clip(background * gain[..., None], 0, 255).astype(np.uint8)
    cx = width * rng.uniform(0.4, 0.6)
    cy = height * rng.uniform(0.5, 0.62)
    a = width * rng.uniform(0.16, 0.22)
    b = height * rng.uniform(0.12, 0.17)
    gb = np.asarray([120, 150, 70]) * rng.uniform(0.85, 1.15, 3)
    gb_colour = (int(gb[0]), int(gb[1]), int(gb[2]))
    layers = {
        "gallbladder": texture(rng, bh, bw, gb_colour, 0.25, (8, 20)),
        "bed": texture(rng, bh, bw, (150, 22, 26), 0.45, (10, 30, 60)),  # raw liver bed
        "fat": texture(rng, bh, bw, (226, 198, 110), 0.3, (12, 30, 60)),  # lobulated fat
        "bag": texture(rng, bh, bw, (228, 230, 236), 0.12, (4, 10)),  # plastic with folds
    }
    for key in layers:
        layers[key] = np.clip(layers[key] * gain[..., None], 0, 255).astype(np.uint8)
    draw_vessels(rng, layers["gallbladder"], 3, (90, 110, 60), max(1, width // 128))
    corners = np.asarray([[0, 0], [width, 0], [0, height], [width, height]], np.float64)
    entries = np.asarray([corners[i % 4] + rng.uniform(-0.1, 0.1, 2) * [width, height]
                          for i in rng.permutation(len(TOOLS))])
    targets = np.asarray([[cx, cy]]) + rng.uniform(-0.15, 0.15, (len(TOOLS), 2)) * [width, height]
    # light source and camera white balance differ between procedures
    light = (rng.uniform(0.75, 1.15) * rng.uniform(0.92, 1.08, 3)).astype(np.float32)
    return VideoScene(background, m, (cx, cy, a, b), gb_colour, entries, targets, layers, light)


#: (shaft, tip) colour of each drawn tool: insulated black shafts with metal tips for grasper,
#: hook and scissors (gold-coloured blades), an all-metal clip applier, a grey bipolar with blue
#: insulated jaws, a white irrigation tube
TOOL_LOOKS = {GRASPER: ((46, 46, 50), (176, 176, 182)), HOOK: ((40, 40, 44), (206, 206, 212)),
              SCISSORS: ((48, 46, 44), (196, 170, 104)),
              CLIPPER: ((160, 162, 170), (220, 220, 226)),
              BIPOLAR: ((96, 100, 110), (50, 80, 196)),
              IRRIGATOR: ((226, 226, 222), (190, 196, 210))}
#: shaft width of each tool in pixels at 128 px frame width
TOOL_WIDTH = {GRASPER: 6, HOOK: 5, SCISSORS: 6, CLIPPER: 8, BIPOLAR: 6, IRRIGATOR: 7}


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(x), int(y)


def _lighter(rgb: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c + (255 - c) * k)) for c in rgb)  # type: ignore[return-value]


def draw_tool(img: np.ndarray, tool: int, entry: tuple[float, float], tip: tuple[float, float],
              scale: float, t: int) -> None:
    """A tool: a shaded cylindrical shaft from its trocar to the tip (a specular line along
    it) and a tool-specific end: grasper jaws, L-hook, curved scissor blades, clip applier
    jaws holding a clip, bipolar forceps, the irrigator's round tip."""
    shaft, metal = TOOL_LOOKS[tool]
    width = max(2, int(round(scale * TOOL_WIDTH[tool])))
    (ex, ey), (px, py) = entry, tip
    norm = math.hypot(px - ex, py - ey) + 1e-6
    dx, dy = (px - ex) / norm, (py - ey) / norm
    nx, ny = -dy, dx
    cv2.line(img, _pt(ex, ey), _pt(px, py), shaft, width, cv2.LINE_AA)
    off = width * 0.25
    cv2.line(img, _pt(ex + nx * off, ey + ny * off), _pt(px + nx * off, py + ny * off),
             _lighter(shaft, 0.45), max(1, width // 4), cv2.LINE_AA)
    jaw = max(3.0, 9 * scale)
    thin = max(1, width // 3)
    if tool in (GRASPER, BIPOLAR, SCISSORS):
        opening = 0.15 + 0.2 * (1 + math.sin(t / 6.0))
        for side in (-1, 1):
            spread = side * jaw * opening
            mid = (px + dx * jaw * 0.5 + nx * spread * 0.6, py + dy * jaw * 0.5 + ny * spread * 0.6)
            bend = 0.35 * jaw if tool == SCISSORS else 0.0
            end = (px + dx * jaw + nx * (spread + bend), py + dy * jaw + ny * (spread + bend))
            pts = np.asarray([_pt(px, py), _pt(*mid), _pt(*end)], np.int32)
            cv2.polylines(img, [pts], False, metal, max(1, width // 2), cv2.LINE_AA)
    elif tool == HOOK:
        end = (px + dx * jaw, py + dy * jaw)
        cv2.line(img, _pt(px, py), _pt(*end), metal, thin, cv2.LINE_AA)
        cv2.line(img, _pt(*end), _pt(end[0] + nx * jaw * 0.5, end[1] + ny * jaw * 0.5), metal,
                 thin, cv2.LINE_AA)
    elif tool == CLIPPER:
        for side in (-1, 1):
            a0 = (px + nx * side * width * 0.35, py + ny * side * width * 0.35)
            cv2.line(img, _pt(*a0), _pt(a0[0] + dx * jaw, a0[1] + dy * jaw), metal,
                     max(1, width // 3), cv2.LINE_AA)
        cv2.line(img, _pt(px + dx * jaw * 0.4, py + dy * jaw * 0.4),
                 _pt(px + dx * jaw * 0.9, py + dy * jaw * 0.9), (236, 224, 180), thin, cv2.LINE_AA)
    elif tool == IRRIGATOR:
        cv2.circle(img, _pt(px, py), max(1, width // 2 + 1), metal, -1, cv2.LINE_AA)
        for k in (0.3, 0.7):  # suction holes
            cv2.circle(img, _pt(px - dx * width * (1 + k), py - dy * width * (1 + k)),
                       max(1, width // 5), (70, 70, 76), -1)


def _overlay(img: np.ndarray, layer: np.ndarray, mask: np.ndarray, ox: int, oy: int, m: int
             ) -> None:
    """Copy the textured ``layer`` (camera crop at ``ox, oy``) onto ``img`` where ``mask``."""
    h, w = img.shape[:2]
    oy = min(max(oy, -m), m)
    cv2.copyTo(layer[m + oy:m + oy + h, m + ox:m + ox + w], mask, img)


def render_cholec80_video(rng: np.random.Generator, width: int, height: int, phases: np.ndarray,
                          present: np.ndarray) -> Iterator[np.ndarray]:
    """Yield (height, width, 3) uint8 frames, one per entry of ``phases``."""
    n = len(phases)
    scene = make_scene(rng, width, height)
    scale = width / 128
    starts = np.flatnonzero(np.r_[True, phases[1:] != phases[:-1]])
    ends = np.r_[starts[1:], n]
    phase_start = np.repeat(starts, ends - starts)
    phase_len = np.repeat(ends - starts, ends - starts)
    progress = (np.arange(n) - phase_start) / phase_len
    # camera: slow pan, wider in packaging / retraction
    amp = scene.margin * 0.45
    cam_x = smooth_path(rng, n, 200, amp) + np.where(np.isin(phases, (4, 6)), amp * 0.6, 0) \
        * np.sin(np.arange(n) / 40)
    cam_y = smooth_path(rng, n, 260, amp * 0.8)
    cam_x = np.clip(np.round(cam_x), -scene.margin, scene.margin).astype(int)
    cam_y = np.clip(np.round(cam_y), -scene.margin, scene.margin).astype(int)
    tips = np.stack([np.stack([smooth_path(rng, n, 60, 0.1 * width),
                               smooth_path(rng, n, 70, 0.1 * height)], 1)
                     for _ in TOOLS]) + scene.targets[:, None, :]
    # light: per-video gain and white balance, a slow drift (the scope moves nearer and
    # farther) and a slight flicker
    flicker = 1 + smooth_path(rng, n, 90, 0.04) + smooth_path(rng, n, 400, 0.12)
    haze = np.clip(smooth_path(rng, n, 50, 1.0) + 0.4, 0, 1)
    smoke_blob: np.ndarray = np.zeros((3 * height, 3 * width), np.float32)
    cv2.circle(smoke_blob, (3 * width // 2, 3 * height // 2), int(width * 0.35), 1.0, -1)
    smoke_blob = cv2.GaussianBlur(smoke_blob, (0, 0), width * 0.15)
    bleed = rng.uniform([0.3, 0.55], [0.7, 0.75], size=(4, 2)) * [width, height]
    cx, cy, a, b = scene.gallbladder
    m = scene.margin
    entries = [(float(x), float(y)) for x, y in scene.entries]
    mask = np.zeros((height, width), np.uint8)
    smoke_grey = np.full((height, width, 3), 215, np.uint8)
    for i in range(n):
        p, u = int(phases[i]), float(progress[i])
        ox, oy = int(cam_x[i]), int(cam_y[i])
        img = scene.background[m + oy:m + oy + height, m + ox:m + ox + width].copy()
        # gallbladder state
        lift = {3: u, 4: 1.0, 5: 1.0, 6: 1.0}.get(p, 0.0) * b * 0.8
        shrink = {4: 1 - 0.85 * u}.get(p, 1.0)
        gc = (cx - ox, cy - lift - oy)
        if p >= 3:  # raw liver bed exposed under the lifted gallbladder
            bed_axes = (int(a * 0.9), int(b * 0.6 * min(1, lift / b + 0.2)))
            mask[:] = 0
            cv2.ellipse(mask, _pt(cx - ox, cy - oy), bed_axes, 0, 0, 360, 1, -1)
            _overlay(img, scene.layers["bed"], mask, ox, oy, m)
        if p <= 4:
            gb_axes = (max(1, int(a * shrink)), max(1, int(b * shrink)))
            mask[:] = 0
            cv2.ellipse(mask, _pt(*gc), gb_axes, -15, 0, 360, 1, -1)
            _overlay(img, scene.layers["gallbladder"], mask, ox, oy - int(lift), m)
        duct_a = np.asarray([cx - a * 0.9 - ox, cy + b * 0.3 - oy])
        duct_b = np.asarray([cx - a * 1.7 - ox, cy + b * 1.1 - oy])
        if p <= 2:  # cystic duct, cut at the end of clipping-cutting
            cut = p == 2 and u > 0.7
            mid = (duct_a + duct_b) / 2
            cv2.line(img, (int(duct_a[0]), int(duct_a[1])),
                     (int(mid[0] - (2 if cut else 0)), int(mid[1])), (200, 186, 140),
                     max(1, int(3 * scale)), cv2.LINE_AA)
            cv2.line(img, (int(mid[0] + (2 if cut else 0)), int(mid[1] + (2 if cut else 0))),
                     (int(duct_b[0]), int(duct_b[1])), (200, 186, 140), max(1, int(3 * scale)),
                     cv2.LINE_AA)
        # fat over the gallbladder neck: full in preparation, dissected away (a shrinking,
        # fragmenting cover) during Calot triangle dissection
        fat = {0: 1.0, 1: 1 - 0.85 * u}.get(p, 0.0)
        if fat > 0:
            mask[:] = 0
            cv2.ellipse(mask, (int(duct_a[0]), int(duct_a[1])),
                        (max(1, int(a * 0.9 * (0.4 + 0.6 * fat))), max(1, int(b * 1.1 * fat))),
                        20, 0, 360, 1, -1)
            _overlay(img, scene.layers["fat"], mask, ox, oy, m)
        clips = 0 if p < 2 else min(3, int(u * 5)) if p == 2 else 3
        for c in range(clips):
            q = duct_a + (duct_b - duct_a) * (0.25 + 0.15 * c)
            cv2.line(img, (int(q[0] - 3 * scale), int(q[1] + 3 * scale)),
                     (int(q[0] + 3 * scale), int(q[1] - 3 * scale)), (235, 235, 240),
                     max(1, int(2 * scale)), cv2.LINE_AA)
        if p == 5:  # bleeding spots on the liver bed
            for k, (bx, by) in enumerate(bleed):
                r = max(1, int(scale * (2 + math.sin(i / 20 + k))))
                cv2.circle(img, (int(bx - ox), int(by - oy)), r, (170, 0, 6), -1, cv2.LINE_AA)
        if present[i, BAG]:  # specimen bag: white pouch, leaving the view during retraction
            exit_shift = (u * 1.3 * width) if p == 6 else 0.0
            bag = (cx + a * 0.6 - exit_shift - ox, cy - b * 0.2 - oy)
            mask[:] = 0
            cv2.ellipse(mask, (int(bag[0]), int(bag[1])), (int(a * 0.9), int(b * 1.2)), 30, 0,
                        360, 1, -1)
            _overlay(img, scene.layers["bag"], mask, ox, oy, m)
            if p == 6:
                cv2.ellipse(img, (int(bag[0]), int(bag[1])), (int(a * 0.4), int(b * 0.5)), 30, 0,
                            360, scene.gb_colour, -1, cv2.LINE_AA)
        for tool in (GRASPER, BIPOLAR, HOOK, SCISSORS, CLIPPER, IRRIGATOR):
            if present[i, tool]:
                tx, ty = float(tips[tool, i, 0]) - ox, float(tips[tool, i, 1]) - oy
                if tool == GRASPER and p == 4:  # holding the gallbladder
                    tx, ty = gc[0] + (tx - gc[0]) * 0.3, gc[1] + (ty - gc[1]) * 0.3
                draw_tool(img, tool, entries[tool], (tx, ty), scale, i)
        # smoke where electrocautery is used: the hook in Calot and gallbladder dissection,
        # the bipolar in cleaning-coagulation
        smoke, source = 0.0, HOOK
        if p == 1 and present[i, HOOK]:
            smoke = 0.3 * haze[i]
        elif p == 3 and present[i, HOOK]:
            smoke = 0.45 * haze[i]
        elif p == 5 and present[i, BIPOLAR]:
            smoke, source = 0.35 + 0.4 * haze[i], BIPOLAR
        img = cv2.transform(img, np.diag(scene.light * float(flicker[i])))  # saturating gain
        if smoke > 0:
            tip = tips[source, i] - (ox, oy)
            x0 = int(np.clip(3 * width // 2 - tip[0], 0, 2 * width))
            y0 = int(np.clip(3 * height // 2 - tip[1], 0, 2 * height))
            alpha = float(smoke) * smoke_blob[y0:y0 + height, x0:x0 + width]
            img = cv2.blendLinear(img, smoke_grey, 1 - alpha, alpha)
        yield img

def encode_mp4(path: Path, frames: Iterator[np.ndarray], width: int, height: int, crf: int
               ) -> None:
    import av  # imported here: reading the written suite from a filled cache needs no FFmpeg

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "ultrafast", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_cholec80_video(out: Path, number: int, size: str, seed: int) -> None:
    """Video ``number`` (1-80) with its phase and tool files, under the staged folder ``out``."""
    spec = CHOLEC_SIZES[size]
    rng = np.random.default_rng([seed, 80, number])
    total = int(round(rng.uniform(spec.min_seconds, spec.max_seconds) * 25))
    lengths = phase_lengths(rng, total)
    phases = np.repeat(np.arange(len(PHASES)), lengths)
    present = tool_presence(rng, phases)
    name = f"video{number:02d}"
    lines = ["Frame\tPhase"] + [f"{f}\t{PHASES[p]}" for f, p in enumerate(phases)]
    (out / "phase_annotations" / f"{name}-phase.txt").write_text("\n".join(lines) + "\n")
    rows = ["Frame\t" + "\t".join(TOOLS)]
    rows += [f"{f}\t" + "\t".join(str(int(v)) for v in present[f]) for f in range(0, total, 25)]
    (out / "tool_annotations" / f"{name}-tool.txt").write_text("\n".join(rows) + "\n")
    frames = render_cholec80_video(rng, spec.width, spec.height, phases, present)
    encode_mp4(out / "videos" / f"{name}.mp4", frames, spec.width, spec.height, spec.crf)


def write_cholec80(root: Path, size: str = "default", seed: int = 0,
                   workers: int | None = None) -> None:
    """Videos with phase and tool files in the Cholec80 layout under ``root``: all 80 at
    ``default``, 16 covering every split at ``small``.

    Videos are independent (one seeded generator each), so they are written by ``workers``
    processes (default: up to 2) with identical output."""
    _check_size(size, CHOLEC_SIZES)
    workers = workers or min(2, os.cpu_count() or 1)
    with staged_dir(root) as out:
        for sub in ("videos", "phase_annotations", "tool_annotations"):
            (out / sub).mkdir()
        numbers = CHOLEC_SIZES[size].videos
        if workers <= 1:
            for number in numbers:
                write_cholec80_video(out, number, size, seed)
            return
        context = multiprocessing.get_context("spawn")  # no fork of a threaded parent
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            n = len(numbers)
            list(pool.map(write_cholec80_video, [out] * n, numbers, [size] * n, [seed] * n))


# --------------------------------------------------------------------------------------
# CholecSeg8k


def _blob(shape: tuple[int, int], cx: float, cy: float, rx: float, ry: float,
          rng: np.random.Generator) -> np.ndarray:
    """A bool mask of a wobbly ellipse."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.arctan2((yy - cy) / max(ry, 1), (xx - cx) / max(rx, 1))
    wobble = 1 + 0.15 * np.sin(3 * angle + rng.uniform(0, 6)) + 0.08 * np.sin(5 * angle
                                                                               + rng.uniform(0, 6))
    return (((xx - cx) / max(rx, 1)) ** 2 + ((yy - cy) / max(ry, 1)) ** 2) < wobble ** 2


def seg_layout(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(2H, 2W) uint8 class map of the static anatomy of one clip (camera crops it)."""
    h, w = 2 * height, 2 * width
    labels = np.full((h, w), 1, dtype=np.uint8)  # abdominal wall
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    edge = h * rng.uniform(0.5, 0.62) + h * 0.08 * np.sin(xx / w * 2 * math.pi + rng.uniform(0, 6))
    labels[(yy < edge) & (yy > h * rng.uniform(0.12, 0.22))] = 2  # liver
    labels[_blob((h, w), w * rng.uniform(0.1, 0.3), h * 0.95, w * 0.25, h * 0.22, rng)] = 3  # GI
    labels[_blob((h, w), w * rng.uniform(0.55, 0.85), h * 0.85, w * 0.22, h * 0.16, rng)] = 4  # fat
    ligament = np.abs(xx - w * rng.uniform(0.3, 0.7) - (yy - h * 0.3) * 0.3) < w * 0.012
    labels[ligament & (labels == 2)] = 12
    gx, gy = w * rng.uniform(0.42, 0.58), h * rng.uniform(0.55, 0.62)
    connective = _blob((h, w), gx, gy + h * 0.03, w * 0.17, h * 0.1, rng)
    labels[connective] = 6
    labels[_blob((h, w), gx, gy, w * 0.14, h * 0.08, rng)] = 10  # gallbladder
    duct = np.abs((yy - gy - h * 0.06) - (xx - gx + w * 0.14) * 0.5) < h * 0.01
    labels[duct & (xx < gx - w * 0.1) & (xx > gx - w * 0.26)] = 8  # cystic duct
    labels[_blob((h, w), w * rng.uniform(0.6, 0.8), h * 0.35, w * 0.04, h * 0.03, rng)] = 11
    for _ in range(int(rng.integers(1, 4))):
        labels[_blob((h, w), w * rng.uniform(0.35, 0.65), h * rng.uniform(0.5, 0.7),
                     w * 0.012, h * 0.015, rng)] = 7  # blood
    return labels


def seg_tool(labels: np.ndarray, class_id: int, entry: np.ndarray, tip: np.ndarray,
             thick: int) -> None:
    e, p = (int(entry[0]), int(entry[1])), (int(tip[0]), int(tip[1]))
    cv2.line(labels, e, p, class_id, thick)
    d = tip - entry
    d = d / (np.linalg.norm(d) + 1e-6)
    n = np.asarray([-d[1], d[0]])
    if class_id == 9:  # L-hook
        end = tip + d * thick * 2
        cv2.line(labels, p, (int(end[0]), int(end[1])), class_id, max(1, thick // 2))
        hook = end + n * thick * 1.5
        cv2.line(labels, (int(end[0]), int(end[1])), (int(hook[0]), int(hook[1])), class_id,
                 max(1, thick // 2))
    else:  # grasper jaws
        for side in (-1, 1):
            end = tip + d * thick * 2 + side * n * thick
            cv2.line(labels, p, (int(end[0]), int(end[1])), class_id, max(1, thick // 2))


def write_png(path: Path, array: np.ndarray) -> None:
    """RGB(A) or grey uint8 array -> PNG (OpenCV wants BGR order)."""
    if array.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if array.shape[2] == 4 else cv2.COLOR_RGB2BGR
        array = cv2.cvtColor(array, code)
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")


def write_cholecseg8k(root: Path, size: str = "default", seed: int = 0) -> None:
    """Clips of the 17 CholecSeg8k videos in the real layout under ``root``."""
    _check_size(size, SEG_SIZES)
    spec = SEG_SIZES[size]
    w, h = spec.width, spec.height
    greys = np.asarray(SEG_GREYS, np.uint8)
    colours = np.asarray(SEG_COLOURS, np.uint8)
    tissue = np.asarray(SEG_TISSUE, np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    # dark corners outside the round endoscope view
    scope = (((xx - w / 2) / (w * 0.56)) ** 2 + ((yy - h / 2) / (h * 0.62)) ** 2) > 1
    count = 0
    with staged_dir(root) as out:
        for video in SEG_VIDEOS:
            rng = np.random.default_rng([seed, 8, video])
            starts = sorted(rng.choice(np.arange(1, 900), spec.clips_per_video, replace=False) * 80)
            for start in starts:
                clip = out / f"video{video:02d}" / f"video{video:02d}_{start:05d}"
                clip.mkdir(parents=True)
                layout = seg_layout(rng, w, h)
                shade = smooth_field(rng, 2 * h, 2 * w, 6)
                n = spec.frames_per_clip
                cam = np.stack([smooth_path(rng, n, 80, w * 0.08),
                                smooth_path(rng, n, 90, h * 0.08)], 1)
                tools = [(5, np.asarray([0.0, rng.uniform(0.6, 1.0) * h])),
                         (9, np.asarray([float(w), rng.uniform(0.0, 0.4) * h]))]
                tool_tips = {
                    c: np.stack([w * rng.uniform(0.35, 0.65) + smooth_path(rng, n, 30, w * 0.12),
                                 h * rng.uniform(0.4, 0.6) + smooth_path(rng, n, 35, h * 0.1)], 1)
                    for c, _ in tools}
                use_hook = rng.uniform() < 0.7
                for k in range(n):
                    ox = int(w / 2 + cam[k, 0])
                    oy = int(h / 2 + cam[k, 1])
                    labels = layout[oy:oy + h, ox:ox + w].copy()
                    for class_id, entry in tools:
                        if class_id == 9 and not use_hook:
                            continue
                        seg_tool(labels, class_id, entry, tool_tips[class_id][k], max(2, w // 40))
                    labels[scope] = 0
                    light = 1 + 0.15 * shade[oy:oy + h, ox:ox + w]
                    noise = rng.normal(0, 1.5, size=(h, w, 1)).astype(np.float32)
                    shaded = tissue[labels] * light[..., None] + noise
                    image = np.clip(shaded, 0, 255).astype(np.uint8)
                    grey = greys[labels]
                    colour = colours[labels]
                    grey[[0, -1], :] = 255
                    grey[:, [0, -1]] = 255
                    colour[[0, -1], :] = 255
                    colour[:, [0, -1]] = 255
                    watershed = np.repeat(grey[..., None], 3, axis=2)
                    if count % 7 == 3:  # some real masks are RGBA with alpha 255
                        alpha = np.full((h, w, 1), 255, np.uint8)
                        watershed = np.concatenate([watershed, alpha], axis=2)
                        colour = np.concatenate([colour, alpha], axis=2)
                    frame = start + k
                    write_png(clip / f"frame_{frame}_endo.png", image)
                    write_png(clip / f"frame_{frame}_endo_watershed_mask.png", watershed)
                    write_png(clip / f"frame_{frame}_endo_color_mask.png", colour)
                    write_png(clip / f"frame_{frame}_endo_mask.png", grey)
                    count += 1
