"""Label-fraction subsets: determinism, nesting, at least one unit, never val/test, strata."""

from __future__ import annotations

import pytest

from ssl_bench.api import Unit, label_count
from ssl_bench.errors import SSLBenchError
from ssl_bench.splits import ordering, parse_label_fracs, select_label_units


def _units(n_train: int = 40, strata: bool = False) -> list[Unit]:
    units = [Unit(f"video{i:02d}", "train", f"s/{i}", (f"c{i % 3}",) if strata else ())
             for i in range(1, n_train + 1)]
    units += [Unit(f"video{i:02d}", "val", f"s/{i}") for i in range(41, 49)]
    units += [Unit(f"video{i:02d}", "test", f"s/{i}") for i in range(49, 81)]
    return units


def test_counts_round_half_up_with_at_least_one() -> None:
    assert label_count(40, 0.01) == 1
    assert label_count(40, 0.05) == 2
    assert label_count(40, 0.1) == 4
    assert label_count(40, 0.125) == 5
    assert label_count(40, 1.0) == 40
    assert label_count(3, 0.0001) == 1


def test_deterministic_and_seed_dependent() -> None:
    units = _units()
    a = select_label_units(units, "cholec80", 0.1, seed=0)
    b = select_label_units(list(reversed(units)), "cholec80", 0.1, seed=0)
    c = select_label_units(units, "cholec80", 0.1, seed=1)
    assert a == b
    assert a != c


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nested_across_fractions(seed: int) -> None:
    units = _units()
    subsets = [set(select_label_units(units, "d", f, seed)) for f in (0.01, 0.05, 0.1, 0.5, 1.0)]
    for small, large in zip(subsets, subsets[1:]):
        assert small <= large
    assert len(subsets[-1]) == 40


def test_never_selects_val_or_test_units() -> None:
    units = _units()
    for seed in range(5):
        chosen = select_label_units(units, "d", 1.0, seed)
        assert all(u.split == "train" for u in chosen)


def test_stratified_prefix_spreads_over_strata() -> None:
    units = _units(strata=True)
    order = ordering(units, "d", 0)
    assert len({u.strata for u in order[:3]}) == 3


def test_no_training_units_is_a_clear_error() -> None:
    with pytest.raises(SSLBenchError, match="no training units"):
        select_label_units([Unit("a", "test", "a")], "d", 0.5, 0)


def test_parse_label_fracs() -> None:
    assert parse_label_fracs("0.01,0.05, 1") == [0.01, 0.05, 1.0]
    for bad in ("0", "1.01", "-1", "x", ""):
        with pytest.raises(SSLBenchError):
            parse_label_fracs(bad)
