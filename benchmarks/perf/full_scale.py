"""Full scale: Cholec80 at its real number and length of videos, simulated at a small resolution.

**Lengths.** Cholec80 is 80 videos at 25 fps of about 38 minutes each (EndoNet,
Twinanda et al. 2017). No per-video list of lengths was at hand, so the lengths are an
**assumption**: a log-normal spread with a coefficient of variation of 0.4, taken at the 80
evenly spaced quantiles (no randomness) and scaled to a mean of exactly 38 minutes (13-92
minutes, 4.56 million frames in all); the video numbers get them in a seeded shuffle, so
every split mixes short and long videos.

**Measured subset, extrapolated.** Writing and decoding all 4.56 million frames does not fit
the 15-minute budget on 2 cores, so the script writes ``--videos`` of the 80 (those at evenly
spaced ranks of the train videos' lengths, each at its full length) at ``--source-size``
with the synthetic Cholec80 renderer, and measures on them:

* **prepare**: ``ssl-bench data prepare cholec80 <root> --size S --fps F ... --jobs J`` as a
  separate process (``--variants``; default 224 px at 1 and 5 fps, what the ``paper`` profiles
  read: every method at 1 fps, Laparoflow-SSL at 5), its wall time, the peak memory of its
  process tree (the sum of the proportional set sizes, PSS, of the command and its workers,
  sampled every 0.2 s) and the RSS of its largest process, and the disk the cache takes. The
  time is the command's own (its summary line: from reading the units to the last write),
  without the interpreter's and plugins' start-up. Extrapolation to the 80 videos: time in
  proportion to the decoded frames (basis: decoding reads every frame; the kept share is the
  same in every video); disk computed exactly from the kept-frame counts of the 80 lengths
  (checked against the measured subset); memory not extrapolated (per worker it does not grow
  with the video);
* **pretraining pool**: loading the train videos of the subset as the harness does
  (``Dataset.load`` per unit: the phase file, the cache's memmaps), then the ``simclr``
  pretraining dataset's frame index; time, Python-heap peak (``tracemalloc``) and resident
  growth, extrapolated to the 40 train videos in proportion to their frames;
* **loader vs step**: each of ``--methods`` at its ``paper`` profile (224 px, its 8 loader
  workers capped by the cores the process may use, as the harness caps them; its batch size)
  reading that pool: images/s of its pretraining DataLoader (after one batch per worker) against
  the images/s its training step consumes (forward + backward + optimiser step on a fixed batch
  of ``--step-batch`` images on ``--device``; on a CPU a smaller batch than the profile's, since
  one step of 256 images at 224 px takes minutes).

**Full resolution.** Two clips of the same content and length, one at the source size and one
at 854x480 (Cholec80's resolution), go through the frame cache's decode (one process, one
FFmpeg thread, the same variants); their time per decoded frame gives a fixed cost and a cost
per source pixel. The full-resolution prepare is then projected for 2 and for 16 cores:
the 80 videos' decode times scheduled longest first on that many workers, as
``data prepare`` does. The clips' bit rate is stated: real videos with more detail and motion
decode slower per pixel than the synthetic ones.

Prints a table, writes ``results/full_scale.json`` and the README section ``full_scale``.

    .venv/bin/python benchmarks/perf/full_scale.py             # the real figures (< 15 min)
    .venv/bin/python benchmarks/perf/full_scale.py --quick     # a seconds-long check
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import perf_common as pc  # noqa: E402

from ssl_bench import atomic  # noqa: E402

NAME = "full_scale"
TITLE = "Full scale: Cholec80 at its real size"
N_VIDEOS = 80
NATIVE_FPS = 25.0
MEAN_MINUTES = 38.0
LENGTH_CV = 0.4
FULL_RES = (854, 480)
#: the synthetic renderer needs at least 25 frames per phase
MIN_FRAMES = 200
BUDGET_S = 15 * 60
LENGTH_BASIS = ("assumption: log-normal, coefficient of variation 0.4, at the 80 evenly "
                "spaced quantiles, scaled to a mean of 38 min; no per-video list of Cholec80 "
                "lengths was at hand")


# ---- the 80 lengths -----------------------------------------------------------------------

def cholec80_lengths(seed: int = 0) -> dict[int, int]:
    """Video number (1-80) -> length in 25-fps frames (see the module docstring)."""
    sigma = float(np.sqrt(np.log1p(LENGTH_CV ** 2)))
    normal = statistics.NormalDist()
    shape = np.exp([sigma * normal.inv_cdf((i + 0.5) / N_VIDEOS) for i in range(N_VIDEOS)])
    frames = np.round(shape / shape.mean() * MEAN_MINUTES * 60 * NATIVE_FPS).astype(int)
    numbers = np.random.default_rng(seed).permutation(np.arange(1, N_VIDEOS + 1))
    return {int(n): int(f) for n, f in zip(numbers, frames)}


def subset(lengths: dict[int, int], k: int) -> list[int]:
    """The ``k`` train videos (1-40, the train split of the default 40/8/32 split, so that the
    pretraining pool can be measured on all of them) at evenly spaced ranks of their lengths."""
    train = sorted((n for n in lengths if n <= 40), key=lambda n: (lengths[n], n))
    return sorted(train[int((j + 0.5) * len(train) / k)] for j in range(k))


# ---- writing the videos -------------------------------------------------------------------

def write_video(root: Path, number: int, n_frames: int, width: int, height: int,
                seed: int = 0) -> None:
    """One Cholec80-layout video (mp4, phase and tool files) of ``n_frames`` frames, drawn by
    the synthetic Cholec80 renderer."""
    from ssl_bench.default_plugins.synthetic.surgical import (
        PHASES,
        TOOLS,
        encode_mp4,
        phase_lengths,
        render_cholec80_video,
        tool_presence,
    )

    rng = np.random.default_rng([seed, 80, number])
    phases = np.repeat(np.arange(len(PHASES)), phase_lengths(rng, n_frames))
    present = tool_presence(rng, phases)
    name = f"video{number:02d}"
    for sub in ("videos", "phase_annotations", "tool_annotations"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    lines = ["Frame\tPhase"] + [f"{f}\t{PHASES[p]}" for f, p in enumerate(phases)]
    (root / "phase_annotations" / f"{name}-phase.txt").write_text("\n".join(lines) + "\n")
    rows = ["Frame\t" + "\t".join(TOOLS)]
    rows += [f"{f}\t" + "\t".join(str(int(v)) for v in present[f])
             for f in range(0, n_frames, 25)]
    (root / "tool_annotations" / f"{name}-tool.txt").write_text("\n".join(rows) + "\n")
    frames = render_cholec80_video(rng, width, height, phases, present)
    encode_mp4(root / "videos" / f"{name}.mp4", frames, width, height, crf=30)


def write_videos(root: Path, lengths: dict[int, int], numbers: list[int], width: int,
                 height: int, workers: int) -> float:
    start = time.perf_counter()
    args = [(root, n, lengths[n], width, height) for n in numbers]
    if workers <= 1:
        for a in args:
            write_video(*a)
    else:
        import multiprocessing

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as ex:
            list(ex.map(write_video, *zip(*args)))
    return time.perf_counter() - start


# ---- prepare ------------------------------------------------------------------------------

def _descendants(pid: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        tree.extend(frontier)
    return tree


def _memory_kb(pid: int) -> tuple[int, int]:
    """(resident, proportional) memory of ``pid`` in KiB: RSS counts every page the process
    maps, shared or not; PSS divides each shared page among the processes that map it (forked
    workers share their parent's pages), so PSS adds up across a process tree."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss or rss


class TreeMemory:
    """Peak memory of a process and its descendants, sampled every ``every_s``: the largest
    single process's RSS and the tree's summed PSS."""

    def __init__(self, pid: int, every_s: float = 0.2) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak_sum_kb = 0
        self.peak_one_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            memory = [_memory_kb(p) for p in _descendants(self.pid)]
            self.peak_sum_kb = max(self.peak_sum_kb, sum(pss for _rss, pss in memory))
            self.peak_one_kb = max(self.peak_one_kb, max((rss for rss, _pss in memory), default=0))
            self._stop.wait(self.every_s)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def disk_bytes(folder: Path) -> tuple[int, int]:
    """(allocated bytes, apparent bytes) of the files under ``folder``."""
    allocated = apparent = 0
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            allocated += stat.st_blocks * 512
            apparent += stat.st_size
    return allocated, apparent


def cache_bytes(n_frames: int, variants: list[tuple[int, float]]) -> int:
    """Bytes of the frame-cache entries of one video of ``n_frames`` frames: per variant, a
    frames ``.npy`` and an ids ``.npy`` (128-byte headers, uint8 frames, int64 ids)."""
    from ssl_bench.cache import NpyWriter
    from ssl_bench.default_plugins.datasets.video import kept_count

    total = 0
    for size, fps in variants:
        kept = kept_count(n_frames, NATIVE_FPS, fps)
        total += 2 * NpyWriter.HEADER_BYTES + kept * (size * size * 3 + 8)
    return total


def run_prepare(root: Path, cache: Path, variants: list[tuple[int, float]], jobs: int,
                in_process: bool) -> dict[str, Any]:
    """``data prepare`` of ``root`` into ``cache``: seconds and peak memory."""
    if in_process:  # --quick: no second interpreter (it would import every plugin)
        from ssl_bench.commands.data import prepare_dataset
        from ssl_bench.default_plugins.datasets.cholec80 import Cholec80

        dataset = Cholec80(root, cache_dir=cache / "data")
        start = time.perf_counter()
        with TreeMemory(os.getpid()) as memory:
            prepare_dataset(dataset, variants, jobs)
        seconds = time.perf_counter() - start
        startup = 0.0
    else:
        command = [sys.executable, "-m", "ssl_bench", "data", "prepare", "cholec80", str(root),
                   "--jobs", str(jobs)]
        for size in sorted({s for s, _f in variants}):
            command += ["--size", str(size)]
        for fps in sorted({f for _s, f in variants}):
            command += ["--fps", f"{fps:g}"]
        env = {**os.environ, "SSL_BENCH_CACHE": str(cache)}
        start = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        with TreeMemory(proc.pid) as memory:
            out, err = proc.communicate()
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"data prepare failed ({proc.returncode}): {err.strip()}")
        # the command's own time (from reading the units to the last write), from its summary
        # line; the rest of the wall time is the interpreter's and plugins' start-up
        match = re.search(r"; ([0-9.]+) s with \d+ jobs?\)", out)
        if match is None:
            raise SystemExit(f"no timing in the summary line of data prepare: {out.strip()!r}")
        seconds = float(match.group(1))
        startup = wall - seconds
    return {"seconds": seconds, "startup_s": startup, "jobs": jobs,
            "peak_tree_pss_mb": memory.peak_sum_kb / 1024,
            "peak_process_rss_mb": memory.peak_one_kb / 1024}


# ---- full-resolution decode cost ----------------------------------------------------------

def decode_probe(folder: Path, sizes: list[tuple[int, int]], n_frames: int,
                 variants: list[tuple[int, float]], repeats: int) -> list[dict[str, Any]]:
    """Seconds per decoded frame of a clip of the same content at each (width, height),
    through the frame cache's decode (one process, one FFmpeg thread), best of ``repeats``."""
    from ssl_bench.default_plugins.datasets.video import FrameCache

    rows = []
    for width, height in sizes:
        clip_root = folder / f"probe-{width}x{height}"
        write_video(clip_root, 1, n_frames, width, height, seed=1)
        video = clip_root / "videos" / "video01.mp4"
        best = float("inf")
        for r in range(repeats):
            cache = FrameCache(folder / f"probe-cache-{width}x{height}-{r}")
            start = time.perf_counter()
            cache.fill(video, variants, NATIVE_FPS, threads=1)
            best = min(best, time.perf_counter() - start)
        rows.append({"width": width, "height": height, "pixels": width * height,
                     "frames": n_frames, "s_per_frame": best / n_frames,
                     "ms_per_frame": best / n_frames * 1e3,
                     "bitrate_kbps": video.stat().st_size * 8 / (n_frames / NATIVE_FPS) / 1e3})
    return rows


def per_frame_cost(probe: list[dict[str, Any]]) -> tuple[float, float]:
    """(fixed seconds per decoded frame, seconds per source pixel per frame): the
    non-negative least-squares line through the probe points (scipy.optimize.nnls).

    A decode cost can neither be negative nor fall with the frame size, but two timings on a
    busy machine can say so (the larger clip decoding faster than the smaller one); the
    unconstrained line then projects a zero or negative cost for the full-size videos.
    """
    from scipy.optimize import nnls

    pixels = np.array([[1.0, float(r["pixels"])] for r in probe])
    seconds = np.array([float(r["s_per_frame"]) for r in probe])
    scale = pixels[:, 1].max()  # pixels in units of the largest probe, for a well-posed fit
    (fixed, per_scaled), _ = nnls(pixels / np.array([1.0, scale]), seconds)
    return float(fixed), float(per_scaled / scale)


def longest_first_makespan(seconds: list[float], workers: int) -> float:
    """Wall time of jobs of ``seconds`` on ``workers`` workers, longest first (each to the
    worker that frees first), as ``data prepare`` submits them."""
    finish = [0.0] * workers
    for s in sorted(seconds, reverse=True):
        i = finish.index(min(finish))
        finish[i] += s
    return max(finish)


# ---- pool, loader and step ----------------------------------------------------------------

def _rss_self_mb() -> float:
    return _memory_kb(os.getpid())[0] / 1024


def pool_load(root: Path, cache: Path, size: int, fps: float) -> tuple[Any, dict[str, Any]]:
    """The surgical pretraining pool of the subset's train videos, as the harness builds it,
    then SimCLR's pretraining dataset over it (its frame index)."""
    from ssl_bench.api import PretrainPool
    from ssl_bench.default_plugins.datasets.cholec80 import Cholec80

    dataset = Cholec80(root, cache_dir=cache / "data")
    train = [u for u in dataset.units() if u.split == "train"]
    simclr = pc.make_method("simclr", "cpu")
    rss0 = _rss_self_mb()
    tracemalloc.start()
    start = time.perf_counter()
    pool = PretrainPool("surgical", [dataset.load(u, size=size, fps=fps) for u in train], "")
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    index = simclr.pretrain_dataset(pool)
    index_s = time.perf_counter() - start
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(index) == len(pool)
    return pool, {"size": size, "fps": fps, "train_videos": len(train), "frames": len(pool),
                  "load_s": load_s, "index_s": index_s, "heap_peak_mb": heap_peak / 2 ** 20,
                  "rss_growth_mb": _rss_self_mb() - rss0}


def loader_rate(method: Any, pool: Any, batches: int, seed: int) -> float:
    """Images/s of the method's pretraining DataLoader, after one batch per worker."""
    from data_path import batch_len
    from pretrain_throughput import make_loader

    loader = make_loader(method, method.pretrain_dataset(pool), seed)
    warm = max(1, loader.num_workers)
    images, seen, start = 0, 0, time.perf_counter()
    while seen < warm + batches:
        for batch in loader:
            seen += 1
            if seen == warm:
                start = time.perf_counter()
            elif seen > warm:
                images += batch_len(batch)
            if seen == warm + batches:
                break
    rate = images / (time.perf_counter() - start)
    del loader
    return rate


def step_rate(method_id: str, profile: str, pool: Any, batch_size: int, device: str,
              overrides: dict[str, Any]) -> float:
    """Images/s the method's training step consumes on a fixed batch of ``batch_size``: fp32
    on a CPU (as ``data_path.py``), bf16 + channels-last on CUDA (``gpu.py``)."""
    import torch
    from pretrain_throughput import compute_only_step, first_batch

    method = pc.make_method(method_id, profile, device,
                            **{**overrides, "batch_size": batch_size, "num_workers": 0})
    batch = first_batch(method, pool, 0)
    if device == "cpu":
        return batch_size / compute_only_step(method, batch, repeats=2)
    import gpu

    return batch_size * gpu.compute_rate(method, batch, torch.device(device), steps=6, warmup=2)


# ---- report -------------------------------------------------------------------------------

def _minutes(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.2f} h"


def render(result: dict[str, Any]) -> str:
    p, pool, lens = result["prepare"], result["pool"], result["lengths"]
    variants = ", ".join(f"{s} px at {f:g} fps" for s, f in result["variants"])
    w, h = result["source_size"]
    proj_rows = [{"cores": r["cores"], "decode_h": r["seconds"] / 3600,
                  "write_mb_s": r["write_mb_s"]} for r in result["projection"]]
    loader_rows = result["loader"]
    probe = result["decode_probe"]
    out = f"""Cholec80's real size, simulated: {N_VIDEOS} videos at 25 fps,
{lens['total_frames']:,} frames ({lens['total_hours']:.1f} h; lengths {lens['min_minutes']:.0f}-{lens['max_minutes']:.0f} min, mean {lens['mean_minutes']:.0f}); lengths are an
{result['length_basis']}. Measured on {len(result['subset'])} of the 80 videos
(numbers {', '.join(map(str, result['subset']))}: {result['subset_frames']:,} frames, {result['subset_share']:.1%} of the set, each at its full length) written at {w}x{h}, prepared for {variants}.

    {result['command']}

| figure | measured on the subset | the 80 videos |
|---|---:|---:|
| `data prepare --jobs {p['jobs']}` wall time | {_minutes(p['seconds'])} | {_minutes(p['full_set_seconds'])} |
| decoded frames / s | {p['frames_per_s']:,.0f} | |
| cache on disk | {p['disk_bytes'] / 1e9:.2f} GB (formula {p['disk_expected_bytes'] / 1e9:.2f} GB) | {p['full_set_disk_bytes'] / 1e9:.1f} GB |
| peak memory, largest process (RSS) | {p['peak_process_rss_mb']:.0f} MB | same: a worker's does not grow with the video |
| peak memory, command + workers (summed PSS) | {p['peak_tree_pss_mb']:.0f} MB | same for the same `--jobs` |
| pretraining pool ({pool['size']} px, {pool['fps']:g} fps): load | {pool['load_s']:.2f} s for {pool['train_videos']} train videos, {pool['frames']:,} frames | {pool['full_load_s']:.1f} s for 40 videos, {pool['full_frames']:,} frames |
| pool: SimCLR frame index | {pool['index_s']:.3f} s | {pool['full_index_s']:.2f} s |
| pool: Python heap peak / resident growth | {pool['heap_peak_mb']:.1f} / {pool['rss_growth_mb']:.0f} MB | {pool['full_heap_peak_mb']:.0f} / {pool['full_rss_growth_mb']:.0f} MB |

Extrapolation: prepare time x {1 / result['subset_share']:.2f} (decoded frames of the 80 videos over the subset's; without the command's start-up of {p['startup_s']:.1f} s); disk from the kept-frame counts of the 80 lengths (the formula matches the subset's files to {abs(p['disk_bytes'] / p['disk_expected_bytes'] - 1):.1%}); pool figures x {pool['full_frames'] / max(1, pool['frames']):.1f} (frames of the 40 train videos over the subset's).

**Full resolution (854x480), projected.** Decode cost per frame, one process, one FFmpeg thread, same variants:

{pc.table(probe, [('width', 'width', 'd'), ('height', 'height', 'd'), ('frames', 'clip frames', 'd'), ('ms_per_frame', 'ms / frame', '.3f'), ('bitrate_kbps', 'clip kbit/s', '.0f')])}

Fixed {result['cost']['fixed_ms']:.3f} ms + {result['cost']['per_mpixel_ms']:.3f} ms per source megapixel per decoded frame: {result['cost']['full_res_ms']:.2f} ms per 854x480 frame. The 80 videos scheduled longest first:

{pc.table(proj_rows, [('cores', 'cores (workers)', 'd'), ('decode_h', 'prepare, hours', '.2f'), ('write_mb_s', 'cache writes, MB/s', '.0f')])}

Assumes one worker per core with no slowdown from sharing memory bandwidth and the disk keeping up with the write rate; the synthetic clips' bit rate is low next to real
surgical video, whose decoding costs more per pixel, so read these as lower bounds. Check of the model on this machine: the subset's prepare with {p['jobs']} workers took
{1 / result['parallel_efficiency']:.2f}x the time predicted from the single-process probe at {w}x{h} and longest-first scheduling.

**Loader vs step at the `{result['profile']}` profile** ({pool['size']} px, the pool above at each method's rate):

{pc.table(loader_rows, [('method', 'method', ''), ('num_workers', 'workers', 'd'), ('batch_size', 'batch', 'd'), ('loader_img_s', 'loader img/s', '.1f'), ('step_batch', 'step batch', 'd'), ('step_device', 'step device', ''), ('step_img_s', 'step img/s', '.1f'), ('ratio', 'loader / step', '.2f')])}

{pc.machine_line(result['machine'])}; the whole script took {_minutes(result['wall_s'])} (budget 15 min).
"""  # noqa: E501 (a markdown report: its table rows are one line each)
    return out


# ---- main ---------------------------------------------------------------------------------

def parse_variants(text: str) -> list[tuple[int, float]]:
    """``SIZE@FPS,...`` -> every size at every rate, as ``data prepare --size --fps`` fills
    them (the first pair is the pool's)."""
    pairs = [item.split("@") for item in text.split(",")]
    sizes = list(dict.fromkeys(int(size) for size, _fps in pairs))
    rates = list(dict.fromkeys(float(fps) for _size, fps in pairs))
    return [(size, fps) for size in sizes for fps in rates]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds-long check of the script "
                        "(the 80 lengths scaled down 200x, 2 videos, tiny sizes, the smoke "
                        "profile); writes full_scale_quick.json and no README section unless "
                        "--readme")
    parser.add_argument("--videos", type=int, default=6, help="train videos of the 80 to write")
    parser.add_argument("--source-size", default="64x36", help="WxH of the written videos")
    parser.add_argument("--variants", default="224@1,224@5",
                        help="SIZE@FPS,... to prepare (every size at every rate)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--methods", default="simclr,distill-self,mae")
    parser.add_argument("--batches", type=int, default=4, help="timed loader batches")
    parser.add_argument("--step-batch", type=int, default=None,
                        help="images per timed step (default: the profile's on CUDA, 8 on CPU)")
    parser.add_argument("--device", default="cpu", help="where the step is timed")
    parser.add_argument("--probe-frames", type=int, default=250)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the 80 lengths "
                        "(1: the real lengths; less only to check the script)")
    parser.add_argument("--results", type=Path, default=pc.RESULTS)
    parser.add_argument("--readme", type=Path, default=None,
                        help=f"README to write the section into (default: {pc.README.name}, "
                             "none with --quick)")
    args = parser.parse_args(argv)
    import torch

    threads = torch.get_num_threads()
    if args.quick:  # its figures mean nothing; on a busy machine two torch threads that wait
        torch.set_num_threads(1)  # on each other made its tiny steps 10x slower
    try:
        return measure(args, argv)
    finally:
        torch.set_num_threads(threads)


def measure(args: argparse.Namespace, argv: list[str] | None) -> dict[str, Any]:
    wall_start = time.perf_counter()
    stages: dict[str, float] = {}

    def stage(name: str) -> None:
        stages[name] = time.perf_counter()
        print(f"{name} ...", file=sys.stderr, flush=True)

    profile, overrides, scale = "paper", {}, args.scale
    if args.quick:
        args.videos, args.source_size, args.variants = 2, "32x18", "24@1,24@5"
        args.methods, args.batches, args.probe_frames, args.jobs = "simclr", 1, MIN_FRAMES, 2
        profile, overrides, scale = "smoke", {"image_size": 24, "num_workers": 0}, 0.005
    lengths = {n: max(MIN_FRAMES, int(round(f * scale))) for n, f in cholec80_lengths().items()}
    width, height = (int(x) for x in args.source_size.split("x"))
    variants = parse_variants(args.variants)
    numbers = subset(lengths, args.videos)
    written = {n: lengths[n] for n in numbers}
    total, subset_frames = sum(lengths.values()), sum(written.values())
    share = subset_frames / total
    work = pc.scratch("full-scale-")
    root, cache = work / "cholec80", work / "cache"

    stage(f"writing {len(numbers)} videos ({subset_frames:,} frames) at {width}x{height}")
    write_s = write_videos(root, written, numbers, width, height,
                           1 if args.quick else min(2, args.jobs))
    stage("data prepare")
    prepare = run_prepare(root, cache, variants, args.jobs, in_process=args.quick)
    prepare.update({
        "frames": subset_frames, "frames_per_s": subset_frames / prepare["seconds"],
        "disk_bytes": disk_bytes(cache / "data" / "frames")[0],
        "disk_expected_bytes": sum(cache_bytes(f, variants) for f in written.values()),
        "full_set_seconds": prepare["seconds"] / share,
        "full_set_disk_bytes": sum(cache_bytes(f, variants) for f in lengths.values()),
        "write_videos_s": write_s})

    stage("pretraining pool")
    pool_size, pool_fps = variants[0]
    pool, pool_row = pool_load(root, cache, pool_size, pool_fps)
    pool_scale = sum(f for n, f in lengths.items() if n <= 40) / subset_frames
    pool_row.update({"full_frames": int(round(pool_row["frames"] * pool_scale)),
                     **{f"full_{k}": pool_row[k] * pool_scale
                        for k in ("load_s", "index_s", "heap_peak_mb", "rss_growth_mb")}})

    stage("loader vs step")
    from ssl_bench.engine.loader import loader_workers

    pools = {pool_fps: pool}
    loader_rows = []
    for method_id in args.methods.split(","):
        method = pc.make_method(method_id, profile, "cpu", **overrides)
        fps = method.config.fps
        if fps not in pools:  # decodes here if --variants did not prepare this rate
            pools[fps] = pool_load(root, cache, pool_size, fps)[0]
        rate = loader_rate(method, pools[fps], args.batches, seed=0)
        step_batch = args.step_batch or (method.config.batch_size
                                         if args.device.startswith("cuda") else 8)
        step_batch = min(step_batch, 4) if args.quick else step_batch
        step = step_rate(method_id, profile, pools[fps], step_batch, args.device, overrides)
        loader_rows.append({"method": method_id,
                            "num_workers": loader_workers(method.config.num_workers),
                            "batch_size": method.config.batch_size, "pool_fps": fps,
                            "loader_img_s": rate, "step_batch": step_batch,
                            "step_device": args.device, "step_img_s": step,
                            "ratio": rate / step})

    stage("decode cost at full resolution")
    probe_sizes = [(width, height), (128, 72) if args.quick else FULL_RES]
    probe = decode_probe(work, probe_sizes, args.probe_frames, variants,
                         repeats=1 if args.quick else 2)
    fixed, per_pixel = per_frame_cost(probe)
    full_cost = fixed + per_pixel * FULL_RES[0] * FULL_RES[1]
    per_video = [f * full_cost for f in lengths.values()]
    projection = [{"cores": cores, "seconds": longest_first_makespan(per_video, cores),
                   "write_mb_s": prepare["full_set_disk_bytes"] / 1e6
                   / longest_first_makespan(per_video, cores)} for cores in (2, 16)]
    small_cost = fixed + per_pixel * width * height
    predicted = longest_first_makespan([f * small_cost for f in written.values()],
                                       prepare["jobs"])

    result: dict[str, Any] = {
        "what": "Cholec80 at its real size (80 videos, 38 min mean): prepare, cache disk, "
                "memory, pretraining pool, paper-profile loader vs step, full-resolution "
                "projection",
        "quick": args.quick,
        "command": " ".join(["python benchmarks/perf/full_scale.py", *(
            argv if argv is not None else sys.argv[1:])]),
        "length_basis": LENGTH_BASIS + (f"; scaled by {scale} to check the script"
                                        if scale != 1.0 else ""),
        "profile": profile,
        "lengths": {"total_frames": total, "total_hours": total / NATIVE_FPS / 3600,
                    "mean_minutes": total / len(lengths) / NATIVE_FPS / 60,
                    "min_minutes": min(lengths.values()) / NATIVE_FPS / 60,
                    "max_minutes": max(lengths.values()) / NATIVE_FPS / 60,
                    "frames_by_video": {str(n): f for n, f in sorted(lengths.items())}},
        "subset": numbers, "subset_frames": subset_frames, "subset_share": share,
        "source_size": [width, height], "variants": [list(v) for v in variants],
        "prepare": prepare, "pool": pool_row, "loader": loader_rows, "decode_probe": probe,
        "cost": {"fixed_ms": fixed * 1e3, "per_mpixel_ms": per_pixel * 1e9,
                 "full_res_ms": full_cost * 1e3},
        "projection": projection,
        "parallel_efficiency": predicted / prepare["seconds"],
        "machine": pc.machine(),
        "wall_s": time.perf_counter() - wall_start,
        "stage_s": {name: b - a for (name, a), b in zip(
            stages.items(), [*list(stages.values())[1:], time.perf_counter()])},
    }
    out = args.results / f"{NAME}{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_json(out, result)
    readme = args.readme or (None if args.quick else pc.README)
    if readme is not None:
        pc.replace_section(NAME, render(result), TITLE, readme)
    print(render(result))
    print(f"wrote {out}" + (f" and the {NAME} section of {readme}" if readme else ""))
    if result["wall_s"] > BUDGET_S and not args.quick:
        print(f"over the {BUDGET_S // 60}-minute budget: use fewer --videos", file=sys.stderr)
    return result


if __name__ == "__main__":
    main()
