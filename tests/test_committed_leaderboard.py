"""The committed ``leaderboards/`` are what their committed records give: the bundle of the run
they come from (``leaderboards/records.tar.gz``, ``ssl-bench export``) travels with them, and
``ssl-bench leaderboard --check`` regenerates every table from it and compares."""

from __future__ import annotations

from pathlib import Path

from ssl_bench.testing import cli_exit_code

BOARD = Path(__file__).resolve().parents[1] / "leaderboards"
FORMATS = "md,csv,json,html,latex"


def test_the_committed_board_is_up_to_date_with_its_committed_records(capsys) -> None:
    bundle = BOARD / "records.tar.gz"
    assert bundle.is_file(), "leaderboards/records.tar.gz (the board's records) is missing"
    code = cli_exit_code(["leaderboard", "--results", str(bundle), "--out", str(BOARD),
                          "--format", FORMATS, "--check"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "up to date with" in out.out


def test_the_check_fails_when_a_committed_table_is_edited(tmp_path: Path, capsys) -> None:
    import shutil

    name = "leaderboard.json"
    copy = tmp_path / "leaderboards"
    shutil.copytree(BOARD, copy)
    path = copy / name
    path.write_text(path.read_text(encoding="utf-8").replace("random-init", "random-lnit", 1),
                    encoding="utf-8")
    code = cli_exit_code(["leaderboard", "--results", str(copy / "records.tar.gz"), "--out",
                          str(copy), "--format", FORMATS, "--check"])
    assert code != 0
    assert name in capsys.readouterr().err
