"""Write-then-rename, so that no half-written file ever sits under a final name."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from satcheck.errors import OutputError, SatcheckError

# Errors of the place written to, not of what is written: a one-line OutputError naming the file.
_PLACE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.ENOTDIR, errno.EISDIR}


def cannot_write(path: str | os.PathLike, exc: OSError) -> OutputError:
    """``exc`` (writing ``path``) as one line saying what to do."""
    why = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = "free some space, or choose another --out"
    else:
        hint = "choose a writable folder, or make this one writable"
    return OutputError(f"{path}: cannot be written ({why}); {hint}")


def _place_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and not isinstance(exc, SatcheckError) and exc.errno in _PLACE_ERRNOS


def make_dirs(folder: str | os.PathLike) -> Path:
    """``folder`` and its parents, or an :class:`OutputError` saying why it cannot be made."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if isinstance(exc, SatcheckError):
            raise
        raise cannot_write(folder, exc) from None
    return folder


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place on success.

    The temporary name keeps the extension (GDAL drivers pick the format
    from it).  On any exception the temporary file is removed and ``final``
    is left as it was.
    """
    final = Path(final)
    make_dirs(final.parent)
    ext = suffix if suffix is not None else "".join(final.suffixes[-1:])
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".part{ext}", dir=final.parent)
    except OSError as exc:
        raise cannot_write(final, exc) from None
    os.close(fd)
    os.unlink(tmp)  # drivers such as GPKG refuse to open an existing empty file
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, final)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if _place_error(exc):  # a full disk, a read-only folder: one line, not a traceback
            raise cannot_write(final, exc) from None
        raise


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a folder of files (e.g. a Shapefile set)."""
    final = Path(final)
    make_dirs(final.parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    except OSError as exc:
        raise cannot_write(final, exc) from None
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _place_error(exc):
            raise cannot_write(final, exc) from None
        raise


def is_leftover(name: str, prefix: str = ".") -> bool:
    """A temporary name of :func:`atomic_path` / :func:`atomic_dir` (``.NAME.XXXX.part…``), a probability
    scratch file (``.TILE.XXXX.scratch.tif``) or the Shapefile staging folder (``.patches.shp.d``): what a
    process killed while writing leaves behind."""
    return name.startswith(prefix) and (".part" in name or name.endswith((".scratch.tif", ".shp.d")))


def remove_leftovers(folders, prefix: str = ".") -> int:
    """Remove what :func:`is_leftover` names in ``folders`` (files and folders); returns how many.

    Only for folders one process writes at a time (an output folder of ``satcheck run`` or ``batch``).
    """
    n = 0
    for folder in map(Path, folders):
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            if is_leftover(f.name, prefix):
                if f.is_dir() and not f.is_symlink():
                    shutil.rmtree(f, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        f.unlink()
                n += 1
    return n
