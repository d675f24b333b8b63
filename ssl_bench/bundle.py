"""Result bundles: one archive holding a group's records with what produced them, which anyone
can check before trusting a row.

A bundle is a gzip-compressed tar archive (written deterministically: sorted members, zero
times and owners, so exporting the same files twice gives the same bytes) with:

- ``manifest.json``: the format and its version, the ssl-bench version that wrote it, the
  export command, the SHA-256 of the lock file the environment was installed from (when the
  exporting checkout has one), each pretraining checkpoint's content hash from its sidecar, and
  the SHA-256 and size of every other member;
- ``records/<benchmark>/<method>/<setting>-seed<seed>.json``: the records (each carries its
  cell identity and environment);
- ``checkpoints/<method>/<key>.json``: the sidecar of every pretraining checkpoint the records
  read, and with ``--with-checkpoints`` the weights (safetensors) beside it;
- ``run/<file>``: the run file, when one is given;
- ``run/invocations/<time>-<pid>.json``: the command line of every ``ssl-bench run`` into the
  results folder (:mod:`ssl_bench.invocations`);
- ``verification/verification-<n>.json``: the records of ``ssl-bench verify --record`` runs
  of these records, when given (:mod:`ssl_bench.verify`).

A bundle comes from strangers, so :func:`read_bundle` checks every member before anything is
written, with explicit checks rather than :mod:`tarfile` filters: a regular file or folder only
(no links, devices or FIFOs), a relative name of plain parts (no absolute path, no ``..``, no
``.`` or empty part, no backslash) under one of :data:`TOP_FOLDERS`, no name twice, no file
that is also another member's folder, at most :attr:`Limits.max_members` members and
:attr:`Limits.max_member_bytes` per member (records, sidecars and the manifest at most
:attr:`Limits.max_small_bytes`), every member listed
in the manifest with its SHA-256 and every listed member present, every record valid and stored
at the path its own cell gives, every weights file safetensors by its bytes (never a pickle).
:func:`import_bundle` then writes the members into an empty target folder, and only there
(each path is checked to resolve inside it); on any refusal nothing is written. Nothing in a
bundle is code, and a record whose method or task is not installed here is reported, not run.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import struct
import tarfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable

from ssl_bench import __version__
from ssl_bench.errors import SSLBenchError
from ssl_bench.invocations import invocation_files
from ssl_bench.records import CellRecord, iter_records, record_path

FORMAT = "ssl-bench-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: the top-level folders a bundle may hold
TOP_FOLDERS = ("records", "checkpoints", "run", "verification")
_PART = re.compile(r"^[A-Za-z0-9_+=@,-][A-Za-z0-9._+=@,-]*$")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What a bundle may hold: members, bytes per member (records, sidecars, run files and
    the manifest: ``max_small_bytes``) and bytes in all."""

    max_members: int = 100_000
    max_member_bytes: int = 16 << 30
    max_small_bytes: int = 64 << 20
    max_total_bytes: int = 256 << 30


@dataclass
class Bundle:
    """A checked bundle: its manifest, its records and the small members' bytes (records,
    sidecars, run files); weights are only hashed, never held."""

    path: Path
    manifest: dict[str, Any]
    records: list[CellRecord]
    small: dict[str, bytes] = field(repr=False)
    weights: list[str]

    def missing_plugins(self, methods: set[str], tasks: set[str]) -> list[str]:
        """One line per method or task that records name and this installation lacks."""
        lines = []
        for kind, have, used in (
                ("method", methods, {r.method.id for r in self.records}),
                ("task", tasks, {r.task.id for r in self.records})):
            for name in sorted(used - have):
                n = sum(1 for r in self.records
                        if (r.method.id if kind == "method" else r.task.id) == name)
                lines.append(f"{kind} {name!r} is not installed here: its {n} record(s) can be "
                             "tabulated but not re-run")
        return lines


def _refuse(path: Path, problem: str) -> SSLBenchError:
    return SSLBenchError(f"bundle {path}: {problem}; nothing was written: ask its author for a "
                         "fresh `ssl-bench export`")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def lock_file() -> Path | None:
    """The lock file of the checkout this ssl-bench runs from (None when installed without
    one)."""
    path = Path(__file__).resolve().parents[1] / "requirements-lock.txt"
    return path if path.is_file() else None


# ---- writing ---------------------------------------------------------------------------------


def _checkpoint_files(results: Path, method: str, key: str) -> list[Path]:
    """The checkpoint of content address ``key`` and its sidecar, where the run's checkpoint
    store keeps them (:class:`ssl_bench.engine.checkpoint_store.CheckpointStore`); its lock
    file and work folder stay out."""
    from ssl_bench.engine.checkpoint_store import CheckpointStore, sidecar_path

    if not key or key.startswith("init-"):
        return []
    ckpt = CheckpointStore(results / "cache").path(method, key)
    return sorted(p for p in (ckpt, sidecar_path(ckpt)) if p.is_file())


def _is_safetensors(head: bytes) -> bool:
    """Whether bytes start like a safetensors file: a little-endian u64 header length, then a
    JSON object."""
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return 2 <= size < (100 << 20) and head[8:9] == b"{"


def export_bundle(results: Path, output: Path, methods: list[str] | None = None,
                  benchmarks: list[str] | None = None, with_checkpoints: bool = False,
                  run_file: Path | None = None, command: str = "",
                  verifications: list[Path] | None = None) -> Bundle:
    """Write the records under ``results`` (of ``methods`` and ``benchmarks`` when given), the
    sidecars of the checkpoints they read (and the weights with ``with_checkpoints``), the run
    file and a manifest into ``output``; returns what was written."""
    if run_file is not None and not Path(run_file).is_file():
        raise SSLBenchError(f"--run-file {run_file} is not a file; pass the YAML file given to "
                            "`ssl-bench run --config`")
    records, warnings = iter_records(results)
    if warnings:
        raise SSLBenchError(f"{len(warnings)} unreadable record(s) under {results / 'records'} "
                            f"(first: {warnings[0]}); fix or remove them before exporting")
    chosen = [r for r in records if (methods is None or r.method.id in methods)
              and (benchmarks is None or r.benchmark in benchmarks)]
    if not chosen:
        raise SSLBenchError(f"no records under {results / 'records'} match --methods/"
                            "--benchmarks; run `ssl-bench run` first or widen the selection")
    files: dict[str, Path] = {}
    for r in chosen:
        path = record_path(results, r.benchmark, r.method.id, r.label_frac, r.seed,
                           r.label_count if r.label_setting == "count" else None)
        files[path.relative_to(results).as_posix()] = path
    checkpoints: dict[str, str] = {}
    for r in chosen:
        key = r.identity.method.checkpoint if r.identity else r.checkpoint
        for ckpt in _checkpoint_files(results, r.method.id, key):
            name = f"checkpoints/{r.method.id}/{ckpt.name}"
            if ckpt.suffix == ".json":
                files[name] = ckpt
                sidecar = json.loads(ckpt.read_text())
                checkpoints[key] = str(sidecar.get("sha256", "")) if isinstance(
                    sidecar, dict) else ""
            elif with_checkpoints:
                files[name] = ckpt
    if run_file is not None:
        files[f"run/{run_file.name}"] = run_file
    for invocation in invocation_files(results):
        files[f"run/invocations/{invocation.name}"] = invocation
    for i, verification in enumerate(verifications or [], start=1):
        if not Path(verification).is_file():
            raise SSLBenchError(f"--verification {verification} is not a file; pass the file "
                                "`ssl-bench verify --record` wrote")
        files[f"verification/verification-{i}.json"] = Path(verification)
    lock = lock_file()
    manifest: dict[str, Any] = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "ssl_bench_version": __version__,
        "command": command, "lock_file_sha256": _sha256_file(lock) if lock else None,
        "checkpoints": dict(sorted(checkpoints.items())),
        "with_checkpoints": with_checkpoints,
        "members": {name: {"sha256": _sha256_file(p), "size": p.stat().st_size}
                    for name, p in sorted(files.items())},
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                  mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, MANIFEST, io.BytesIO(json.dumps(manifest, indent=2, sort_keys=True)
                                       .encode()), None)
        for name, path in sorted(files.items()):
            with open(path, "rb") as f:
                _add(tar, name, f, path.stat().st_size)
    tmp.replace(output)
    small = {n: p.read_bytes() for n, p in files.items() if not n.startswith("checkpoints/")
             or p.suffix == ".json"}
    return Bundle(output, manifest, chosen, small,
                  [n for n, p in files.items() if n.startswith("checkpoints/")
                   and p.suffix != ".json"])


def _add(tar: tarfile.TarFile, name: str, data: IO[bytes], size: int | None) -> None:
    info = tarfile.TarInfo(name)
    if size is None:
        size = len(data.getvalue()) if isinstance(data, io.BytesIO) else 0
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, data)


# ---- reading ---------------------------------------------------------------------------------


def check_member_name(name: str) -> str | None:
    """Why ``name`` may not be a bundle member (None when it may): it must be relative, made of
    plain parts (letters, digits and ``._+=@,-``, not starting with a dot), and be the manifest
    or lie under one of :data:`TOP_FOLDERS`."""
    if not name or name.startswith("/") or "\\" in name or "\x00" in name:
        return "an absolute or malformed path"
    parts = name.split("/")
    if ".." in parts:
        return "a path that climbs out of the folder (`..`)"
    if any(not p or p == "." or not _PART.match(p) for p in parts):
        return "a path with an empty, `.`, hidden or unusual part"
    if name != MANIFEST and (parts[0] not in TOP_FOLDERS or len(parts) < 2):
        return f"a path outside {', '.join(f'{t}/' for t in TOP_FOLDERS)} and {MANIFEST}"
    return None


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo, keep: bool
                 ) -> tuple[str, bytes | None, bytes]:
    """The SHA-256 of a regular member's bytes, its bytes when ``keep``, and its first bytes."""
    stream = tar.extractfile(member)
    if stream is None:
        raise tarfile.ReadError(f"cannot read {member.name}")
    digest = hashlib.sha256()
    kept = bytearray()
    head = b""
    remaining = member.size
    while remaining > 0:
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        digest.update(chunk)
        if not head:
            head = chunk[:16]
        if keep:
            kept += chunk
    return digest.hexdigest(), bytes(kept) if keep else None, head


def _is_small(name: str) -> bool:
    return name == MANIFEST or not name.startswith("checkpoints/") or name.endswith(".json")


def read_bundle(path: Path, limits: Limits = Limits()) -> Bundle:
    """Check a bundle without writing anything (see the module docstring for every check)
    and return its manifest, records and small members; raises one line naming the first
    member that fails."""
    path = Path(path)
    if not path.is_file():
        raise SSLBenchError(f"bundle {path} does not exist; pass the file `ssl-bench export` "
                            "wrote")
    hashes: dict[str, str] = {}
    sizes: dict[str, int] = {}
    small: dict[str, bytes] = {}
    weights: list[str] = []
    total = 0
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for count, member in enumerate(tar, start=1):
                if count > limits.max_members:
                    raise _refuse(path, f"more than {limits.max_members} members")
                name = member.name
                why = check_member_name(name.rstrip("/") if member.isdir() else name)
                if why is not None:
                    raise _refuse(path, f"member {name!r} is {why}")
                if member.isdir():
                    continue
                if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE):
                    raise _refuse(path, f"member {name!r} is a link, device or other special "
                                        "file; a bundle holds regular files only")
                if name in sizes:
                    raise _refuse(path, f"member {name!r} appears twice")
                cap = limits.max_small_bytes if _is_small(name) else limits.max_member_bytes
                if member.size > cap:
                    raise _refuse(path, f"member {name!r} is {member.size} bytes, over the "
                                        f"limit of {cap}")
                total += member.size
                if total > limits.max_total_bytes:
                    raise _refuse(path, f"more than {limits.max_total_bytes} bytes in all")
                digest, data, head = _read_member(tar, member, keep=_is_small(name))
                hashes[name], sizes[name] = digest, member.size
                if data is not None:
                    small[name] = data
                else:
                    if not _is_safetensors(head):
                        raise _refuse(path, f"member {name!r} is not a safetensors file; "
                                            "weights travel only as safetensors")
                    weights.append(name)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _refuse(path, f"not a readable bundle archive ({first})") from None
    manifest = _manifest(path, small.pop(MANIFEST, None))
    hashes.pop(MANIFEST, None)
    for name in sorted(hashes):
        parts = name.split("/")
        folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
        clash = next((f for f in folders if f in hashes), None)
        if clash is not None:
            raise _refuse(path, f"member {clash!r} is a file and also the folder of {name!r}")
    listed: dict[str, Any] = manifest["members"]
    for name in sorted(set(hashes) | set(listed)):
        if name not in hashes:
            raise _refuse(path, f"member {name!r} is listed in the manifest but missing")
        entry = listed.get(name)
        if not isinstance(entry, dict):
            raise _refuse(path, f"member {name!r} is not listed in the manifest")
        if entry.get("sha256") != hashes[name] or entry.get("size") != sizes[name]:
            raise _refuse(path, f"member {name!r} does not match the manifest's SHA-256; the "
                                "bundle was altered or damaged")
    records = [_record(path, name, data) for name, data in sorted(small.items())
               if name.startswith("records/")]
    return Bundle(path, manifest, records, small, sorted(weights))


def _manifest(path: Path, data: bytes | None) -> dict[str, Any]:
    if data is None:
        raise _refuse(path, f"no {MANIFEST}")
    try:
        manifest = json.loads(data)
    except ValueError:
        raise _refuse(path, f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise _refuse(path, f"{MANIFEST} is not an ssl-bench bundle manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise SSLBenchError(f"bundle {path}: format version {manifest.get('format_version')!r}, "
                            f"this ssl-bench reads {FORMAT_VERSION}; upgrade ssl-bench")
    if not isinstance(manifest.get("members"), dict):
        raise _refuse(path, f"{MANIFEST} lists no members")
    return manifest


def _record(path: Path, name: str, data: bytes) -> CellRecord:
    """A record member, valid and stored at the path its own cell gives."""
    try:
        record = CellRecord.model_validate(json.loads(data))
    except ValueError as exc:
        first = str(exc).splitlines()[0]
        raise _refuse(path, f"member {name!r} is not a valid record ({first})") from None
    expected = record_path(Path("."), record.benchmark, record.method.id, record.label_frac,
                           record.seed,
                           record.label_count if record.label_setting == "count" else None)
    if expected.as_posix() != name:
        raise _refuse(path, f"member {name!r} holds the record of {expected.as_posix()}")
    return record


def import_bundle(path: Path, target: Path, limits: Limits = Limits()) -> Bundle:
    """Check the bundle (:func:`read_bundle`), then write its members into ``target``, which
    must be missing or empty: records under ``target/records`` (so ``ssl-bench leaderboard
    --results target`` reads them), sidecars and weights under ``target/checkpoints``, the run
    file under ``target/run``, and the manifest. On a refusal nothing is written (a target this
    call created is removed again)."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise SSLBenchError(f"import target {target} is not an empty folder; pass a new "
                            "folder with --to")
    bundle = read_bundle(path, limits)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        for name, data in sorted(bundle.small.items()):
            _write(root, name, data)
        _write(root, MANIFEST, json.dumps(bundle.manifest, indent=2, sort_keys=True).encode())
        if bundle.weights:
            extract_weights(path, bundle, bundle.weights, lambda n: _destination(root, n),
                            limits)
    except BaseException:
        if created:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in root.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        raise
    return bundle


def _destination(root: Path, name: str) -> Path:
    if check_member_name(name) is not None:  # checked already; never trust one check alone
        raise SSLBenchError(f"refusing to write {name!r}")
    dest = root.joinpath(*PurePosixPath(name).parts)
    if not Path(os.path.normpath(dest)).is_relative_to(root):
        raise SSLBenchError(f"refusing to write {name!r} outside {root}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.parent.resolve().is_relative_to(root):
        raise SSLBenchError(f"refusing to write {name!r} outside {root}")
    return dest


def _write(root: Path, name: str, data: bytes) -> None:
    with open(_destination(root, name), "xb") as f:
        f.write(data)


def extract_weights(path: Path, bundle: Bundle, names: list[str],
                    destination: Callable[[str], Path], limits: Limits = Limits()) -> None:
    """Stream the weights members ``names`` of a checked bundle to ``destination(name)``,
    hashing them again as they are written (the archive may have changed since it was
    checked); raises, naming the member, when one differs from the manifest or is gone."""
    wanted = set(names)
    if not wanted <= set(bundle.weights):
        extra = sorted(wanted - set(bundle.weights))
        raise SSLBenchError(f"{', '.join(extra)}: not weights of bundle {path}")
    with tarfile.open(path, mode="r:*") as tar:
        for count, member in enumerate(tar, start=1):
            if count > limits.max_members:
                raise _refuse(path, f"more than {limits.max_members} members")
            if member.name not in wanted or member.type not in (tarfile.REGTYPE,
                                                                tarfile.AREGTYPE):
                continue
            wanted.discard(member.name)
            stream = tar.extractfile(member)
            if stream is None:
                raise _refuse(path, f"member {member.name!r} cannot be read")
            digest = hashlib.sha256()
            remaining = min(member.size, limits.max_member_bytes)
            with open(destination(member.name), "xb") as out:
                while remaining > 0 and (chunk := stream.read(min(_CHUNK, remaining))):
                    remaining -= len(chunk)
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != bundle.manifest["members"][member.name]["sha256"]:
                raise _refuse(path, f"member {member.name!r} changed while it was imported")
    if wanted:
        raise _refuse(path, f"member {sorted(wanted)[0]!r} vanished while it was imported")


__all__ = ["Bundle", "FORMAT", "FORMAT_VERSION", "Limits", "MANIFEST", "TOP_FOLDERS",
           "check_member_name", "export_bundle", "extract_weights", "import_bundle", "lock_file",
           "read_bundle", "sha256_bytes"]
