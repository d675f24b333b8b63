"""Does the phase score see the frames? A cheap check of ``cholec80-phase`` on the synthetic
suite: the real task through the harness, plus a ridge probe on the same per-frame features.

1. **Task.** ``ssl-bench run`` of ``random-init``, ``imagenet`` and the collapsed control
   (``simclr-collapsed``: an encoder that outputs a constant plus 1e-4 of a 1-step simclr,
   registered by ``validity.py``'s ``ControlPlugin``) on ``cholec80-phase``, 1 % labels (one
   video), the given seeds and profile, then the leaderboard's paired statistics (hierarchical
   bootstrap over seeds and test videos, Holm-adjusted) against ``random-init``. A benchmark
   that measures the frames shows the collapsed control significantly *below* random init and
   imagenet significantly *above* it.
2. **Probe.** The per-frame features that run cached (1 fps, the labelled, val and test
   videos; one set per checkpoint, i.e. per seed for random init) are
   standardised and fed to a ridge-regression classifier (one-hot targets), trained on half of
   the videos and tested on the other half, three random splits: the frame accuracy the
   features allow without any temporal model. Far above the majority share for an encoder
   means the frames carry the phase. The standardisation undoes the collapsed control's
   1e-4 scale, so its probe figure is that of the 1-step simclr (about imagenet's); the task's
   temporal model sees the raw features, as every row does.

The suite is written (once) under ``--work``'s cache (``SSL_BENCH_CACHE`` is set there), never
under the user's cache. ``-o`` overrides go to ``ssl-bench run`` unchanged (e.g.
``-o task.phase-recognition.epochs=200``).

    .venv/bin/python benchmarks/validity/phase_probe.py [--seeds 0,1,2] [--work /tmp/pp]
        [--size default] [--profile cpu] [-o KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
BENCHMARK = "cholec80-phase"
CONTROL = "simclr-collapsed"
METHODS = ("random-init", "imagenet", CONTROL)


def run_task(results: Path, seeds: str, profile: str, size: str, overrides: list[str]) -> None:
    from ssl_bench.cli import main

    args = ["run", "--methods", ",".join(METHODS), "--benchmarks", BENCHMARK,
            "--label-frac", "0.01", "--seeds", seeds, "--profile", profile,
            "--synthetic-size", size, "--results", str(results), "--quiet",
            # the control's encoder is a constant: one pretraining step is enough
            "-o", f"{CONTROL}.max_steps=1", "-o", f"{CONTROL}.epochs=10000"]
    for item in overrides:
        args += ["-o", item]
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the board goes to stderr, JSON to stdout
            main(args)
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"ssl-bench run failed ({exc.code})") from None


def read_board(results: Path) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from validity import read_point

    return read_point(results, BENCHMARK)


def checkpoint_methods(results: Path) -> dict[str, str]:
    """Checkpoint id -> method id, from the run's records."""
    out = {}
    for path in (results / "records" / BENCHMARK).rglob("*.json"):
        record = json.loads(path.read_text())
        if record.get("checkpoint"):
            out[record["checkpoint"]] = record["method"]["id"]
    return out


def cached_features(results: Path) -> dict[str, list[dict[str, np.ndarray]]]:
    """Checkpoint id -> the per-frame feature entries (1 fps) the run cached for its videos."""
    out: dict[str, list[dict[str, np.ndarray]]] = {}
    paths = sorted((results / "cache" / "features").glob("frame-features_*.npz"))
    if not paths:
        return out

    def fingerprint(path: Path) -> str:  # the dataset's, in the key: one written suite
        return path.name.split("_cholec80-")[1].split("_")[0]

    # a results folder reused after the suite changed holds features of both: the newest only
    newest = fingerprint(max(paths, key=lambda p: p.stat().st_mtime))
    for path in paths:
        if fingerprint(path) != newest:
            continue
        checkpoint = path.name[len("frame-features_"):].split("_cholec80-")[0]
        with np.load(path, allow_pickle=False) as npz:
            if "phases" in npz.files:
                out.setdefault(checkpoint, []).append(
                    {"features": npz["features"].astype(np.float64), "phases": npz["phases"]})
    return out


def probe_by_method(results: Path) -> dict[str, dict[str, float]]:
    """Ridge-probe figures per method: mean over its checkpoints (one per seed, or shared)."""
    methods = checkpoint_methods(results)
    per: dict[str, list[dict[str, float]]] = {}
    for checkpoint, videos in cached_features(results).items():
        if checkpoint in methods and len(videos) >= 4:
            per.setdefault(methods[checkpoint], []).append(ridge_probe(videos))
    return {m: {"frame_accuracy": float(np.mean([r["frame_accuracy"] for r in rows])),
                "majority_share": float(np.mean([r["majority_share"] for r in rows])),
                "checkpoints": len(rows)} for m, rows in sorted(per.items())}


def ridge_probe(videos: list[dict[str, np.ndarray]], splits: int = 3, alpha: float = 10.0
                ) -> dict[str, float]:
    """Frame accuracy (%) of a ridge classifier trained on half the videos, tested on the
    other half, mean over ``splits`` random halvings; and the majority-phase share."""
    rng = np.random.default_rng(0)
    accs, majority = [], []
    for _ in range(splits):
        order = rng.permutation(len(videos))
        half = len(videos) // 2
        train = [videos[i] for i in order[:half]]
        test = [videos[i] for i in order[half:]]
        x = np.concatenate([v["features"] for v in train])
        y = np.concatenate([v["phases"] for v in train])
        xt = np.concatenate([v["features"] for v in test])
        yt = np.concatenate([v["phases"] for v in test])
        mean, std = x.mean(0), x.std(0) + 1e-6
        x, xt = (x - mean) / std, (xt - mean) / std
        x, xt = np.c_[x, np.ones(len(x))], np.c_[xt, np.ones(len(xt))]
        target = np.eye(7)[y]
        w = np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ target)
        accs.append(100.0 * float(np.mean((xt @ w).argmax(1) == yt)))
        majority.append(100.0 * np.bincount(yt, minlength=7).max() / len(yt))
    return {"frame_accuracy": float(np.mean(accs)), "majority_share": float(np.mean(majority))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--size", default="default", choices=["small", "default"])
    parser.add_argument("--work", type=Path, default=None,
                        help="Folder for the suite (cache) and the results; reuse it to keep "
                             "the written suite (default: a temporary folder).")
    parser.add_argument("-o", "--override", action="append", default=[],
                        help="KEY=VALUE passed to `ssl-bench run -o` (repeatable).")
    parser.add_argument("--no-probe", action="store_true", help="Only the task.")
    parser.add_argument("--reuse", action="store_true",
                        help="Read the results of an earlier run with the same seeds and "
                             "overrides under --work instead of running again.")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="phase-probe-"))
    cache = work / "cache"
    os.environ["SSL_BENCH_CACHE"] = str(cache)  # never the user's cache
    from ssl_bench import plugins

    sys.path.insert(0, str(HERE))
    from validity import ControlPlugin

    plugins.register_plugin(ControlPlugin(), "validity-control", "benchmarks/validity")
    tag = "seeds" + args.seeds.replace(",", "-") + "".join(
        "_" + o.replace("=", "-").replace(".", "") for o in args.override)
    results = work / "results" / tag
    start = time.perf_counter()
    if not args.reuse or not (results / "records").is_dir():
        run_task(results, args.seeds, args.profile, args.size, args.override)
    board = read_board(results)
    out: dict[str, Any] = {"seeds": args.seeds, "profile": args.profile, "size": args.size,
                           "overrides": args.override, "task": {}}
    for method, row in board["rows"].items():
        out["task"][method] = {k: row[k] for k in ("mean", "delta", "ci_low", "ci_high",
                                                    "p_holm", "significant")}
    if not args.no_probe:
        out["probe"] = probe_by_method(results)
    out["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
