"""Result bundles: export and import round trip, and every refusal of a bundle from a stranger
with a crafted archive (a tampered member, ``..``, an absolute path, links and devices, an
oversized member, too many members, an unlisted or missing member, weights that are not
safetensors, a record stored under another cell's path). A refused bundle writes nothing, and
no bundle ever writes outside its target folder."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import save_file

from ssl_bench.bundle import (
    MANIFEST,
    Limits,
    check_member_name,
    export_bundle,
    import_bundle,
    read_bundle,
)
from ssl_bench.cli import cli
from ssl_bench.errors import SSLBenchError
from ssl_bench.records import iter_records, write_record
from ssl_bench.testing import score_record

KEY = "a" * 16


def _results(root: Path) -> Path:
    """Two methods x two seeds of records, one method reading a checkpoint with a sidecar and
    weights in the run's cache."""
    results = root / "results"
    for seed in (0, 1):
        write_record(results, score_record("random-init", seed, 50.0 + seed))
        rec = score_record("simclr", seed, 60.0 + seed)
        rec.checkpoint = KEY
        write_record(results, rec)
    store = results / "cache" / "checkpoints" / "simclr"
    store.mkdir(parents=True)
    save_file({"w": np.ones((2, 2), dtype=np.float32)}, str(store / f"{KEY}.safetensors"))
    digest = hashlib.sha256((store / f"{KEY}.safetensors").read_bytes()).hexdigest()
    (store / f"{KEY}.json").write_text(json.dumps({"sha256": digest, "steps": 3}))
    return results


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def _craft(path: Path, files: dict[str, bytes], special: list[tarfile.TarInfo] = (),
           manifest: dict | None = None, list_all: bool = True) -> Path:
    """A tar.gz of ``files`` (and ``special`` members), with a manifest listing every file
    (unless ``manifest`` is given)."""
    if manifest is None:
        manifest = {"format": "ssl-bench-bundle", "format_version": 1,
                    "members": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
                                for n, d in files.items() if list_all or n.startswith("records/")}}
    everything = {MANIFEST: json.dumps(manifest).encode(), **files}
    with gzip.open(path, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, data in everything.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in special:
            tar.addfile(info)
    return path


def _record_bytes(method: str = "random-init", seed: int = 0) -> tuple[str, bytes]:
    rec = score_record(method, seed, 50.0)
    return (f"records/b1/{method}/lf0.5-seed{seed}.json",
            json.dumps(rec.model_dump(mode="json")).encode())


#: the limits an import has unless a test sets others
DEFAULT_LIMITS = Limits()


def _refused(tmp_path: Path, bundle: Path, match: str,
             limits: Limits = DEFAULT_LIMITS) -> str:
    """Import ``bundle``: it must be refused with ``match`` in one line, and write nothing
    (no target folder, no file anywhere under tmp_path but those there before)."""
    before = sorted(p for p in tmp_path.rglob("*"))
    with pytest.raises(SSLBenchError, match=match) as err:
        import_bundle(bundle, tmp_path / "target", limits)
    assert "\n" not in str(err.value)
    assert sorted(p for p in tmp_path.rglob("*")) == before
    return str(err.value)


def test_export_then_import_round_trip(tmp_path: Path) -> None:
    results = _results(tmp_path)
    out = tmp_path / "b.tar.gz"
    written = export_bundle(results, out, command="ssl-bench export -o b.tar.gz")
    members = _members(out)
    manifest = json.loads(members[MANIFEST])
    assert sorted(members) == sorted([MANIFEST, *manifest["members"]])
    assert f"checkpoints/simclr/{KEY}.json" in members
    assert f"checkpoints/simclr/{KEY}.safetensors" not in members  # weights only on request
    assert manifest["checkpoints"][KEY] == json.loads(members[f"checkpoints/simclr/{KEY}.json"]
                                                      )["sha256"]
    assert manifest["command"] == "ssl-bench export -o b.tar.gz"
    assert "lock_file_sha256" in manifest and len(written.records) == 4
    # deterministic: the same files give the same bytes
    again = tmp_path / "again.tar.gz"
    export_bundle(results, again, command="ssl-bench export -o b.tar.gz")
    assert again.read_bytes() == out.read_bytes()

    target = tmp_path / "theirs"
    bundle = import_bundle(out, target)
    assert len(bundle.records) == 4
    mine = {r.key: r for r in iter_records(results)[0]}
    theirs = {r.key: r for r in iter_records(target)[0]}
    assert mine == theirs
    assert (target / "checkpoints" / "simclr" / f"{KEY}.json").exists()


def test_the_bundle_carries_the_run_commands_and_run_file(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from ssl_bench.invocations import write_invocation

    results = _results(tmp_path)
    run_file = tmp_path / "run.yaml"
    run_file.write_text("methods: simclr\nseeds: [0, 1]\n")
    when = datetime(2026, 12, 5, 4, 30, tzinfo=timezone.utc)
    path = write_invocation(results, ["run", "--config", str(run_file), "--results", "r y"],
                            run_file, now=when)
    assert path.parent == results / "runs" and path.name.startswith("20261205T043000Z-")
    export_bundle(results, tmp_path / "b.tar.gz")
    members = _members(tmp_path / "b.tar.gz")
    entry = json.loads(members[f"run/invocations/{path.name}"])
    assert entry["command"] == f"ssl-bench run --config {run_file} --results 'r y'"
    assert entry["run_file"] == {"name": "run.yaml", "text": "methods: simclr\nseeds: [0, 1]\n"}
    assert entry["started"] == "2026-12-05T04:30:00+00:00"
    assert (import_bundle(tmp_path / "b.tar.gz", tmp_path / "theirs") is not None
            and (tmp_path / "theirs" / "run" / "invocations" / path.name).exists())


def test_weights_travel_on_request_and_are_checked(tmp_path: Path) -> None:
    results = _results(tmp_path)
    # the store's lock file beside the checkpoint (a run leaves it) is not a checkpoint
    (results / "cache" / "checkpoints" / "simclr" / f"{KEY}.safetensors.lock").write_text("")
    out = tmp_path / "b.tar.gz"
    written = export_bundle(results, out, methods=["simclr"], with_checkpoints=True)
    assert written.weights == [f"checkpoints/simclr/{KEY}.safetensors"]
    assert {r.method.id for r in written.records} == {"simclr"}
    import_bundle(out, tmp_path / "theirs")
    copied = tmp_path / "theirs" / "checkpoints" / "simclr" / f"{KEY}.safetensors"
    assert copied.read_bytes() == (results / "cache" / "checkpoints" / "simclr" /
                                   f"{KEY}.safetensors").read_bytes()
    # weights that are not safetensors (a pickle) are refused, even when listed
    files = {f"checkpoints/simclr/{KEY}.safetensors": b"\x80\x04\x95pickle", **dict(
        [_record_bytes()])}
    _refused(tmp_path, _craft(tmp_path / "pickle.tar.gz", files), "not a safetensors file")


def test_a_tampered_member_is_refused_naming_it(tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    export_bundle(_results(tmp_path), out)
    members = _members(out)
    name = "records/b1/simclr/lf0.5-seed1.json"
    members[name] = members[name].replace(b"61.0", b"99.0")
    manifest = json.loads(members.pop(MANIFEST))
    tampered = _craft(tmp_path / "tampered.tar.gz", members, manifest=manifest)
    message = _refused(tmp_path, tampered, "does not match the manifest's SHA-256")
    assert repr(name) in message
    result = CliRunner().invoke(cli, ["import", str(tampered), "--to", str(tmp_path / "t")])
    assert result.exit_code != 0 and repr(name) in str(result.exception)


@pytest.mark.parametrize("name, why", [
    ("../evil.json", "climbs out"),
    ("records/../../evil.json", "climbs out"),
    ("/tmp/evil.json", "absolute"),
    ("records/b1/./x.json", "unusual part"),
    ("records/.hidden", "unusual part"),
    ("evil.json", "outside"),
    ("records\\..\\evil.json", "malformed"),
])
def test_paths_leaving_the_target_are_refused(tmp_path: Path, name: str, why: str) -> None:
    assert check_member_name(name) is not None
    files = dict([_record_bytes()])
    files[name] = b"{}"
    _refused(tmp_path, _craft(tmp_path / "evil.tar.gz", files), why)
    assert not (tmp_path.parent / "evil.json").exists()
    assert not Path("/tmp/evil.json").exists()


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE,
                                  tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_links_and_devices_are_refused(tmp_path: Path, kind: bytes) -> None:
    info = tarfile.TarInfo("records/b1/random-init/lf0.5-seed1.json")
    info.type = kind
    info.linkname = "/etc/passwd"
    files = dict([_record_bytes()])
    _refused(tmp_path, _craft(tmp_path / "link.tar.gz", files, special=[info]),
             "link, device or other special file")


def test_size_and_count_limits(tmp_path: Path) -> None:
    files = dict([_record_bytes(seed=s) for s in range(3)])
    bundle = _craft(tmp_path / "b.tar.gz", files)
    _refused(tmp_path, bundle, "over the limit of 100", Limits(max_small_bytes=100))
    _refused(tmp_path, bundle, "more than 3 members", Limits(max_members=3))
    _refused(tmp_path, bundle, "bytes in all", Limits(max_total_bytes=1000))
    assert len(read_bundle(bundle).records) == 3


def test_manifest_must_list_exactly_the_members(tmp_path: Path) -> None:
    name, data = _record_bytes()
    extra = {name: data, "run/run.yaml": b"methods: all\n"}
    _refused(tmp_path, _craft(tmp_path / "a.tar.gz", extra, list_all=False),
             "'run/run.yaml' is not listed in the manifest")
    manifest = {"format": "ssl-bench-bundle", "format_version": 1,
                "members": {name: {"sha256": hashlib.sha256(data).hexdigest(),
                                   "size": len(data)},
                            "records/b1/x/lf0.5-seed0.json": {"sha256": "0", "size": 1}}}
    _refused(tmp_path, _craft(tmp_path / "b.tar.gz", {name: data}, manifest=manifest),
             "listed in the manifest but missing")
    not_tar = tmp_path / "c.tar.gz"
    not_tar.write_bytes(b"not an archive")
    _refused(tmp_path, not_tar, "not a readable bundle archive")


def test_a_record_under_another_cells_path_is_refused(tmp_path: Path) -> None:
    _, data = _record_bytes("random-init", 0)
    _refused(tmp_path, _craft(tmp_path / "b.tar.gz",
                              {"records/b1/simclr/lf0.5-seed0.json": data}),
             "holds the record of records/b1/random-init/lf0.5-seed0.json")


def test_a_non_empty_target_is_refused_and_missing_plugins_are_named(tmp_path: Path) -> None:
    files = dict([_record_bytes("not-installed-method")])
    bundle = _craft(tmp_path / "b.tar.gz", files)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    with pytest.raises(SSLBenchError, match="not an empty folder"):
        import_bundle(bundle, busy)
    assert sorted(p.name for p in busy.iterdir()) == ["mine.txt"]
    result = CliRunner().invoke(cli, ["import", str(bundle), "--to", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "note: method 'not-installed-method' is not installed here" in result.output
    assert "1 records" in result.output


def test_cli_export(tmp_path: Path) -> None:
    results = _results(tmp_path)
    out = tmp_path / "cli.tar.gz"
    result = CliRunner().invoke(cli, ["export", "--results", str(results), "--benchmarks", "b1",
                                      "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 records, 1 checkpoint sidecars, 0 checkpoint weights" in result.output
    manifest = json.loads(_members(out)[MANIFEST])
    assert manifest["command"].startswith("ssl-bench export --results ")
    nothing = CliRunner().invoke(cli, ["export", "--results", str(results), "--methods", "nope",
                                       "-o", str(tmp_path / "x.tar.gz")])
    assert nothing.exit_code != 0 and not (tmp_path / "x.tar.gz").exists()
    missing = CliRunner().invoke(cli, ["export", "--results", str(results), "--run-file",
                                       str(tmp_path / "none.yaml"), "-o", str(out)])
    assert missing.exit_code != 0 and "is not a file" in str(missing.exception)


def test_a_file_that_is_also_a_folder_is_refused(tmp_path: Path) -> None:
    """``run/x`` and ``run/x/y`` cannot both be written: refused in one line before anything
    is written, not a FileExistsError halfway through the import."""
    files = {**dict([_record_bytes()]), "run/x": b"a", "run/x/y": b"b"}
    _refused(tmp_path, _craft(tmp_path / "b.tar.gz", files),
             "'run/x' is a file and also the folder of 'run/x/y'")
