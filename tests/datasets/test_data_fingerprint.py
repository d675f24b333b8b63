"""A dataset's fingerprint names its content, not the copy: the same synthetic suite written
twice (new mtimes), copied elsewhere or touched has one fingerprint, so cells computed on two
machines share an identity; a changed byte, file or reader option gives another."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ssl_bench.data_fingerprint import SAMPLE_BYTES, tree_fingerprint
from ssl_bench.default_plugins.datasets.btcv import Btcv


def test_the_same_synthetic_data_written_twice_and_copied_has_one_fingerprint(
        tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "btcv", tmp_path / "b" / "btcv"
    Btcv.write_synthetic(first, size="small", seed=0)
    Btcv.write_synthetic(second, size="small", seed=0)
    copied = tmp_path / "c" / "btcv"
    shutil.copytree(first, copied, copy_function=shutil.copyfile)  # new mtimes, no metadata
    for path in second.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))  # a copy made long ago
    prints = {Btcv(root).fingerprint() for root in (first, second, copied)}
    assert len(prints) == 1
    assert len(next(iter(prints))) == 16


def test_content_files_and_options_change_the_fingerprint(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    small = root / "labels.txt"
    small.write_text("Frame\tPhase\n0\tPreparation\n")
    big = root / "sub" / "video.bin"
    big.write_bytes(bytes(range(256)) * (4 * SAMPLE_BYTES // 256))
    base = tree_fingerprint(root, "reader")
    assert tree_fingerprint(root, "reader") == base
    assert tree_fingerprint(root, "reader options changed") != base

    small.write_text("Frame\tPhase\n0\tPreparatiom\n")  # same size, one byte
    assert tree_fingerprint(root, "reader") != base
    small.write_text("Frame\tPhase\n0\tPreparation\n")
    assert tree_fingerprint(root, "reader") == base

    data = bytearray(big.read_bytes())
    data[-1] ^= 0xFF  # the sampled tail of a large file
    big.write_bytes(bytes(data))
    assert tree_fingerprint(root, "reader") != base
    data[-1] ^= 0xFF
    big.write_bytes(bytes(data))
    assert tree_fingerprint(root, "reader") == base

    (root / "sub" / "extra.txt").write_text("x")
    assert tree_fingerprint(root, "reader") != base
    (root / "sub" / "extra.txt").unlink()
    (root / "sub" / "video.bin").rename(root / "video.bin")  # the layout counts
    assert tree_fingerprint(root, "reader") != base
