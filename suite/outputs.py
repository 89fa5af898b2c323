"""Files the suite writes into a folder the user names (``suite report --out``, ``suite export --out``).

Nothing there that the suite did not write is ever written through, replaced or deleted:

- every file is first written into a private staging folder inside the target folder (created afresh,
  mode 0700), then moved into place with ``os.replace``, which is atomic (a reader, or a kill, sees
  the old file or the new one, never a part of one) and replaces a name, never following a symlink;
- a name that exists and is not the suite's (a file it did not write, a symlink, a folder) is refused
  before anything is moved;
- the folder's manifest records the SHA-256 of each file the suite wrote, at the time it wrote it. A
  file counts as the suite's only while its content still has that hash, so a file edited since, a
  symlink, or a name added to the manifest by hand is never the suite's to replace or delete.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

STAGING_PREFIX = ".suite-staging-"


def sha256_file(path: Path) -> str | None:
    """SHA-256 of a regular file, read without following a symlink; None for anything else."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            return None
        h = hashlib.sha256()
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
        return h.hexdigest()


def _plain(name) -> bool:
    """A name the suite may write: one plain file name, nothing that walks out of the folder."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name \
        and "\0" not in name


def read_manifest(folder: Path, manifest: str) -> tuple[dict[str, set[str]] | None, list[str] | None]:
    """(name -> the hashes recorded for it, or None where there is no such manifest; the names an
    older manifest lists, which recorded no hashes)."""
    path = folder / manifest
    if not os.path.lexists(path):
        return None, None
    if path.is_symlink() or not path.is_file():
        return {}, None  # not ours: nothing is trusted
    try:
        files = json.loads(path.read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        return {}, None
    if isinstance(files, list):  # written before hashes were recorded
        return None, [n for n in files if _plain(n)]
    if not isinstance(files, dict):
        return {}, None
    out = {}
    for name, hashes in files.items():
        hashes = [hashes] if isinstance(hashes, str) else hashes
        if _plain(name) and name != manifest and isinstance(hashes, list):
            out[name] = {h for h in hashes if isinstance(h, str)}
    return out, None


def owned(folder: Path, manifest: str, recognise: Callable[[Path], bool] | None = None,
          unlisted: bool = False) -> dict[str, str]:
    """The suite's files in ``folder``: name -> current SHA-256, for each regular file whose content
    has a hash the manifest recorded. With a manifest from before hashes were recorded, a file it
    lists is the suite's only if ``recognise`` says so; with no manifest at all, any file ``recognise``
    accepts (only with ``unlisted``: a folder written before there were manifests)."""
    hashes, legacy = read_manifest(folder, manifest)
    out = {}
    if hashes is not None:
        for name, known in hashes.items():
            h = sha256_file(folder / name)
            if h is not None and h in known:
                out[name] = h
        return out
    if recognise is None or (legacy is None and not unlisted) or not folder.is_dir():
        return out
    names = legacy if legacy is not None else [p.name for p in folder.iterdir()]
    for name in names:
        p = folder / name
        if name != manifest and not p.is_symlink() and p.is_file() and recognise(p):
            h = sha256_file(p)
            if h is not None:
                out[name] = h
    return out


def clashes(folder: Path, names, mine: dict[str, str]) -> list[str]:
    """Names that exist in ``folder`` (a dangling symlink included) and are not the suite's."""
    return sorted(n for n in names if n not in mine and os.path.lexists(folder / n))


def stage(folder: Path) -> Path:
    """A fresh private folder inside ``folder`` to write into (moved into place by ``publish``).
    Staging folders that a killed process of this host left behind are removed first."""
    folder.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().replace("-", "_")
    for p in folder.glob(f"{STAGING_PREFIX}{host}-*"):
        pid = p.name[len(STAGING_PREFIX) + len(host) + 1:].partition("-")[0]
        if pid.isdigit() and not _alive(int(pid)) and p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{host}-{os.getpid()}-", dir=folder))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        pass
    return True


def _write_manifest(folder: Path, staging: Path, manifest: str, files: dict[str, list[str]]) -> None:
    tmp = staging / (manifest + ".next")
    tmp.write_text(json.dumps({"files": {n: files[n] for n in sorted(files)}}, indent=1), encoding="utf-8")
    os.replace(tmp, folder / manifest)


def publish(staging: Path, folder: Path, manifest: str, mine: dict[str, str],
            refuse: Callable[[list[str]], Exception], prune: bool = False) -> list[Path]:
    """Move every file of ``staging`` into ``folder``, then remove ``staging``. ``mine`` is ``owned()``
    of the folder, read before staging was filled. Refuses (raising ``refuse(names)``, nothing moved)
    when a name is taken by something not the suite's. With ``prune``, the suite's files of an earlier
    write that this one did not write again are deleted, each only if its content is still what the
    suite wrote. Returns the paths written."""
    try:
        new = {p.name: sha256_file(p) for p in sorted(staging.iterdir()) if p.is_file() and not p.is_symlink()}
        taken = clashes(folder, new, mine)
        m = folder / manifest
        if m.is_symlink() or (os.path.lexists(m) and not m.is_file()):
            taken.append(manifest)
        if taken:
            raise refuse(taken)
        # First the manifest lists old and new content, so a kill while files move leaves every file
        # of ours recognisable; then the files move; then the manifest lists what is there.
        during = {n: [h] for n, h in mine.items()}
        for n, h in new.items():
            during[n] = sorted({h, *during.get(n, [])})
        _write_manifest(folder, staging, manifest, during)
        for n in new:
            os.replace(staging / n, folder / n)
        final = {n: [h] for n, h in new.items()}
        for n, h in mine.items():
            if n in new:
                continue
            if prune:
                if sha256_file(folder / n) == h:
                    with contextlib.suppress(FileNotFoundError):
                        (folder / n).unlink()
            else:
                final[n] = [h]
        _write_manifest(folder, staging, manifest, final)
        return [folder / n for n in new]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
