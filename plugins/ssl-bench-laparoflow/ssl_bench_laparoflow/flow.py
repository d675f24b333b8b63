"""Classical dense optical flow between two frames, cached on disk per frame pair.

Laparoflow-SSL (Moens et al., MIDL 2024) weights contrasted pixel pairs by the difference of
their optical flows; the paper's flow estimator is not reproduced here because learned flow
models need weights that cannot be fetched offline. We
use Farneback's polynomial-expansion method (G. Farneback, "Two-Frame Motion Estimation Based
on Polynomial Expansion", SCIA 2003) through OpenCV's ``cv2.calcOpticalFlowFarneback``
(parameters documented at docs.opencv.org, "Optical Flow" tutorial: pyr_scale 0.5, levels 3,
winsize 15, iterations 3, poly_n 5, poly_sigma 1.2 are the tutorial's values).

Cache: one ``.npy`` (float16, (H, W, 2), pixels) per frame pair under ``root``, keyed by the
SHA-256 of both frames' bytes and shapes plus the flow parameters, so the same pair is computed
once and reused across runs and method instances; files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from ssl_bench import atomic


@dataclass(frozen=True)
class FarnebackParams:
    """Arguments of ``cv2.calcOpticalFlowFarneback`` (OpenCV tutorial defaults)."""

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2


def farneback_flow(frame_a: np.ndarray, frame_b: np.ndarray, params: FarnebackParams
                   ) -> np.ndarray:
    """Dense flow from ``frame_a`` to ``frame_b`` ((H, W, 3) uint8 RGB) -> (H, W, 2) float32
    (dx, dy) in pixels: ``frame_a[y, x]`` moves to ``frame_b[y + dy, x + dx]``."""
    grey_a = cv2.cvtColor(np.ascontiguousarray(frame_a), cv2.COLOR_RGB2GRAY)
    grey_b = cv2.cvtColor(np.ascontiguousarray(frame_b), cv2.COLOR_RGB2GRAY)
    # OpenCV takes None for the output ``flow``; its stubs do not say so.
    flow = cv2.calcOpticalFlowFarneback(  # type: ignore[call-overload]
        grey_a, grey_b, None, params.pyr_scale, params.levels, params.winsize,
        params.iterations, params.poly_n, params.poly_sigma, 0,
    )
    return flow.astype(np.float32)


class FlowCache:
    """Flow per frame pair, computed once and kept on disk under ``root``.

    ``computed`` counts flows computed by this instance (cache misses); ``hits`` counts reads.
    """

    def __init__(self, root: Path | str, params: FarnebackParams | None = None) -> None:
        self.root = Path(root)
        self.params = params or FarnebackParams()
        self.computed = 0
        self.hits = 0

    def key(self, frame_a: np.ndarray, frame_b: np.ndarray) -> str:
        h = hashlib.sha256()
        for frame in (frame_a, frame_b):
            arr = np.ascontiguousarray(frame)
            h.update(f"{arr.shape}:{arr.dtype}".encode())
            h.update(arr.tobytes())
        h.update(json.dumps(asdict(self.params), sort_keys=True).encode())
        h.update(b"farneback-v1")
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def flow(self, frame_a: np.ndarray, frame_b: np.ndarray) -> np.ndarray:
        """(H, W, 2) float32 flow from ``frame_a`` to ``frame_b``, from the cache when present."""
        path = self.path(self.key(frame_a, frame_b))
        if path.exists():
            try:
                flow = np.load(path, allow_pickle=False)
                if flow.shape == (*frame_a.shape[:2], 2):
                    self.hits += 1
                    return flow.astype(np.float32)
            except (OSError, ValueError):
                pass  # unreadable entry: recompute and overwrite
        flow = farneback_flow(frame_a, frame_b, self.params)
        self.computed += 1
        data = atomic.to_bytes(lambda buf: np.save(buf, flow.astype(np.float16)))
        atomic.write_bytes(path, data)
        return flow.astype(np.float16).astype(np.float32)  # same values as a later cache read


__all__ = ["FarnebackParams", "FlowCache", "farneback_flow"]
