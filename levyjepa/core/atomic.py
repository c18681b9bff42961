"""Atomic file writes: write a temporary file in the same folder, flush, fsync, rename.

A reader (or a resumed run) sees either the old file or the complete new one, never a
half-written one, even if the process dies mid-write. Folders likewise: written complete beside
their place, then renamed into it (:func:`replace_folder`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional


def _umask() -> int:
    """The process umask (read by setting it and putting it back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _default_mode() -> int:
    """The mode ``open()`` would give a new file: ``0o666`` minus the process umask."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """The mode ``mkdir`` would give a new folder: ``0o777`` minus the process umask."""
    return 0o777 & ~_umask()


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (with the permissions of a plain new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file 0600; results are meant to be shared like any other file.
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Replace ``path`` with ``obj`` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def fsync_tree(root: str | os.PathLike[str]) -> None:
    """Flush every file under ``root`` to disk (before renaming the folder into place)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def replace_folder(staged: Path, dest: Path) -> None:
    """Rename a complete ``staged`` folder to ``dest``, replacing an older ``dest`` safely.

    The older folder is first renamed aside (a reader sees it, or nothing, or the new one; never
    a mixture), then removed; if the second rename fails it is put back.
    """
    old: Optional[Path] = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old"))
        os.replace(dest, old / dest.name)
    try:
        os.replace(staged, dest)
    except BaseException:
        if old is not None:
            os.replace(old / dest.name, dest)
            old.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old)


def remove_folder(dest: Path) -> None:
    """Remove the folder ``dest``, renaming it aside first so no half of it remains."""
    if not dest.exists():
        return
    aside = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old"))
    os.replace(dest, aside / dest.name)
    shutil.rmtree(aside)
