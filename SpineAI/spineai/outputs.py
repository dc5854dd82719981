"""Safe output writing: never overwrite without permission, never leave half-written files.

Every file the engine writes goes through :func:`atomic_path`: the writer fills a temporary file in
the same folder, which is renamed over the destination only when writing succeeded. A crash (or a
cancelled Slicer background process) therefore leaves either the old file or the new one, never a
truncated one.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import OutputExistsError


def check_writable(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Return ``path`` as a Path, raising :class:`OutputExistsError` if it exists and not ``overwrite``."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise OutputExistsError(p)
    return p


def _suffixes(p: Path) -> str:
    # keep the full multi-part extension (".nii.gz", ".seg.nrrd") so format detection still works
    return "".join(p.suffixes) or ".tmp"


def _umask() -> int:
    """The process's file-creation mask (read without changing it for longer than a call)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    Example:
        >>> with atomic_path("out/ct.nii.gz") as tmp:  # doctest: +SKIP
        ...     sitk.WriteImage(image, str(tmp))
    """
    dest = check_writable(path, overwrite)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{dest.name.split('.')[0]}.", suffix=_suffixes(dest), dir=dest.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if not overwrite and dest.exists():  # appeared while we were writing
            raise OutputExistsError(dest)
        if tmp.is_file():  # mkstemp makes the file private (0600): give it the usual permissions
            tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str, overwrite: bool = False) -> Path:
    """Write ``text`` (UTF-8) atomically to ``path``."""
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, data: Any, overwrite: bool = False) -> Path:
    """Write ``data`` as indented JSON atomically to ``path``."""
    return write_text(
        path, json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n", overwrite
    )


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse an output folder that would lose something, before any work is done; create nothing.

    Refused (:class:`OutputExistsError`): a file at ``path``, or a non-empty folder unless ``overwrite``.
    """
    p = Path(path)
    if p.exists() and (not p.is_dir() or (any(p.iterdir()) and not overwrite)):
        raise OutputExistsError(p)
    return p


def prepare_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Create a new output folder; refuse a non-empty existing one unless ``overwrite``.

    With ``overwrite`` the folder is kept and files are replaced one by one as they are written;
    nothing else in it is deleted.
    """
    p = check_output_dir(path, overwrite)
    p.mkdir(parents=True, exist_ok=True)
    return p


def replace_dir(src: Path, dest: Path) -> None:
    """Move a finished temporary folder ``src`` to ``dest`` (which must not exist)."""
    if dest.exists():
        raise OutputExistsError(dest)
    shutil.move(str(src), str(dest))
