"""Finding data files under a user's ``data_dir``, fetching them on request, checking them.

Every loader of :mod:`pyhbnode.data` goes through :func:`locate_or_download`, so the rules
are the same everywhere:

* nothing is fetched unless the caller passes ``download=True`` (and never at import);
* a missing file raises :class:`DataNotFoundError`, whose message names the file, the folders
  searched and where to get it;
* a fetched file is checked against a published checksum before it is used; for ``.gz`` files
  the checksum is of the *decompressed* content by default, because re-compressed copies of the
  same data (common for MNIST) differ only in their gzip container.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from ..checks import regular_file

__all__ = [
    "Checksum",
    "DataNotFoundError",
    "DataFormatError",
    "DownloadError",
    "ChecksumError",
    "read_data_bytes",
    "file_digest",
    "verify_checksum",
    "download_url",
    "extract_members",
    "fetch_and_unpack",
    "search_dirs",
    "find_file",
    "locate_or_download",
]

PathLike = str | os.PathLike[str]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Checksum:
    """A published digest of a data file.

    Attributes:
        algorithm: ``"md5"`` or ``"sha256"``.
        hexdigest: the expected digest, lower-case hex.
        decompressed: if true and the file name ends in ``.gz``, the digest is of the gunzipped
            bytes; otherwise of the file as stored (e.g. the published md5 of a ``.tar.gz``).
    """

    algorithm: Literal["md5", "sha256"]
    hexdigest: str
    decompressed: bool = True


class DataNotFoundError(FileNotFoundError):
    """A data file is not in ``data_dir`` and ``download`` was not requested.

    Attributes:
        missing: the file (or pattern) that was looked for.
        searched: the folders that were searched, in order.
        urls: where the file can be fetched from (may be empty).
    """

    def __init__(
        self,
        filename: str,
        searched: Sequence[Path],
        urls: Sequence[str] = (),
        *,
        unpack_into: Path | None = None,
        note: str = "",
    ) -> None:
        """
        Args:
            filename: the missing file or pattern.
            searched: folders searched, the first being where a file should go.
            urls: official source first, then mirrors.
            unpack_into: set when ``urls`` serve an archive, which is unpacked here rather
                than saved as ``filename``.
            note: a sentence appended to the message.
        """
        # Not ``self.filename``: OSError.__str__ would then replace the message with "[Errno None] ...".
        self.missing, self.searched, self.urls = filename, list(searched), list(urls)
        where = ", ".join(str(p) for p in self.searched) or "(nowhere)"
        msg = f"data file {filename!r} not found; searched: {where}."
        if self.urls:
            mirrors = f" (mirrors: {', '.join(self.urls[1:])})" if len(self.urls) > 1 else ""
            if unpack_into is not None:
                msg += (
                    f" Get the archive {self.urls[0]}{mirrors} and unpack it into {unpack_into}, "
                    "or pass download=True to fetch and unpack it there."
                )
            else:
                msg += (
                    f" Get it from {self.urls[0]}{mirrors} and put it in {self.searched[0]}, "
                    "or pass download=True to fetch it there."
                )
        else:
            msg += " No download location is known; place the file there by hand."
        if note:
            msg += " " + note
        super().__init__(msg)


class DataFormatError(ValueError):
    """A data file is present but malformed (wrong magic number, truncated, corrupt gzip)."""


class DownloadError(OSError):
    """Fetching a URL failed (no network, server gone, HTTP error)."""


class ChecksumError(ValueError):
    """A file's digest differs from the published one."""


def read_data_bytes(path: PathLike) -> bytes:
    """All bytes of a data file, gunzipped if its name ends in ``.gz``.

    Raises:
        DataFormatError: the gzip stream is corrupt or cut short.
    """
    path = regular_file(path, "data file")  # a FIFO or device is refused, never opened
    if not path.name.endswith(".gz"):
        return path.read_bytes()
    with gzip.open(path, "rb") as f:
        try:
            return f.read()
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise DataFormatError(f"{path}: corrupt or truncated gzip file ({exc}); fetch it again.") from exc


def file_digest(
    path: PathLike | Sequence[PathLike], algorithm: str = "sha256", *, decompress: bool | None = None
) -> str:
    """Hex digest of a file, or of several files' bytes concatenated in the given order.

    Args:
        path: a file, or a sequence of files (e.g. the sorted members of an extracted archive).
        algorithm: any :mod:`hashlib` name (``"md5"``, ``"sha256"``).
        decompress: hash the gunzipped bytes; ``None`` means "if the name ends in ``.gz``".
    """
    paths = [Path(p) for p in _files(path)]
    h = hashlib.new(algorithm)
    for p in paths:
        unzip = p.name.endswith(".gz") if decompress is None else decompress
        with (gzip.open if unzip else open)(p, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
    return h.hexdigest()


def _files(path: PathLike | Sequence[PathLike]) -> list[PathLike]:
    """``path`` as a list of files: a str or path-like is one file, not a sequence of them."""
    return [path] if isinstance(path, (str, os.PathLike)) else list(path)


def verify_checksum(path: PathLike | Sequence[PathLike], checksum: Checksum, *, name: str | None = None) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the digest ``checksum``.

    Args:
        path: the file to check, or several files whose concatenation is checked.
        checksum: the expected digest.
        name: the name that decides whether the file counts as ``.gz`` and that the message
            shows (defaults to the file's own name; a download checks its temporary file
            under the final name).
    """
    if name is None:
        files = _files(path)
        name = Path(files[0]).name if isinstance(path, (str, os.PathLike)) else f"{len(files)} files"
    decompress = checksum.decompressed and name.endswith(".gz")
    got = file_digest(path, checksum.algorithm, decompress=decompress)
    if got != checksum.hexdigest.lower():
        what = "decompressed content" if decompress else "content"
        raise ChecksumError(
            f"{checksum.algorithm} of the {what} of {name} is {got}, expected "
            f"{checksum.hexdigest}: the data is corrupt, truncated or a different version. "
            "Delete it and fetch it again."
        )


def download_url(
    urls: str | Sequence[str], dest: PathLike, *, checksum: Checksum | None = None, timeout: float = 60.0
) -> Path:
    """Fetch the first reachable of ``urls`` into ``dest`` and check it.

    The bytes go to a temporary file next to ``dest`` and are renamed into place only after the
    checksum matches, so an interrupted or corrupt download never leaves a file that a later
    call would mistake for good data.

    Raises:
        DownloadError: no URL could be fetched (the message says the machine may be offline).
        ChecksumError: the fetched file does not match ``checksum``.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for url in urls:
        fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                shutil.copyfileobj(resp, out, _CHUNK)
            if checksum is not None:
                # The temporary name lacks '.gz'; the final name decides which bytes are hashed.
                verify_checksum(tmp, checksum, name=dest.name)
            os.replace(tmp, dest)
            return dest
        except (OSError, ValueError) as exc:  # URLError/HTTPError/timeouts are OSErrors; bad URLs ValueErrors
            tmp.unlink(missing_ok=True)
            if isinstance(exc, ChecksumError):
                msg = f"download from {url} failed verification, nothing was saved: {exc}"
                raise ChecksumError(msg) from exc
            failures.append(f"{url}: {exc}")
    raise DownloadError(
        f"could not download {dest.name}: "
        + "; ".join(failures)
        + ". This machine may be offline. Download the file by hand and place it at "
        f"{dest}, then call again without download=True."
    )


def extract_members(archive: PathLike, dest_dir: PathLike, keep: Iterable[str] | None = None) -> list[Path]:
    """Extract regular files from a ``.zip`` or ``.tar[.gz]`` archive into ``dest_dir``.

    Only plain files are written, and only under ``dest_dir``: members with absolute paths or
    ``..`` components are refused, since a downloaded archive is untrusted input.

    Args:
        archive: the archive file.
        dest_dir: where the archive's relative paths are recreated.
        keep: file-name suffixes to extract (e.g. ``[".npy"]``); ``None`` extracts every file.

    Returns:
        The written paths, sorted.
    """
    dest_dir = Path(dest_dir)
    suffixes = tuple(keep) if keep is not None else None
    written: list[Path] = []

    def target(name: str) -> Path | None:
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts:
            raise ValueError(f"refusing archive member with unsafe path {name!r} in {archive}")
        if suffixes is not None and not name.endswith(suffixes):
            return None
        out = dest_dir.joinpath(*rel.parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if info.is_dir() or (out := target(info.filename)) is None:
                    continue
                with zf.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
                written.append(out)
    else:
        with tarfile.open(archive) as tf:
            for member in tf:
                if not member.isfile() or (out := target(member.name)) is None:
                    continue
                data = tf.extractfile(member)
                assert data is not None  # isfile() members always have data
                with data, open(out, "wb") as dst:
                    shutil.copyfileobj(data, dst, _CHUNK)
                written.append(out)
    return sorted(written)


def fetch_and_unpack(
    urls: str | Sequence[str],
    dest_dir: PathLike,
    archive_name: str,
    *,
    checksum: Checksum | None = None,
    keep: Iterable[str] | None = None,
) -> list[Path]:
    """Download an archive into ``dest_dir``, unpack it there and delete it.

    Args:
        urls: official source and mirrors, tried in order.
        dest_dir: where the archive is saved and unpacked.
        archive_name: the file name to save the archive under (``.zip`` or ``.tar.gz``).
        checksum: digest the archive must match before anything is unpacked.
        keep: file-name suffixes to extract, as :func:`extract_members`.

    Returns:
        The unpacked files, sorted.
    """
    archive = download_url(urls, Path(dest_dir) / archive_name, checksum=checksum)
    try:
        return extract_members(archive, dest_dir, keep=keep)
    finally:
        archive.unlink()


def search_dirs(data_dir: PathLike, subdirs: Sequence[str]) -> list[Path]:
    """``data_dir/<subdir>`` for each subdir, in order; ``"."`` stands for ``data_dir`` itself."""
    root = Path(data_dir)
    return [root / s if s not in ("", ".") else root for s in subdirs]


def find_file(data_dir: PathLike, names: Sequence[str], subdirs: Sequence[str] = (".",)) -> Path | None:
    """First existing ``data_dir/<subdir>/<name>``, trying subdirs in order, then names in order."""
    for folder in search_dirs(data_dir, subdirs):
        for name in names:
            if (folder / name).is_file():
                return folder / name
    return None


def locate_or_download(
    data_dir: PathLike,
    names: Sequence[str],
    *,
    subdirs: Sequence[str] = (".",),
    urls: Sequence[str] = (),
    checksum: Checksum | None = None,
    download: bool = False,
) -> Path:
    """Path of a data file under ``data_dir``, fetching it only if ``download`` is true.

    Args:
        data_dir: the user's data root.
        names: accepted file names, preferred first (e.g. ``["x.gz", "x"]``); the first is the
            name a download is saved under.
        subdirs: folders below ``data_dir`` to search, in order (``"."`` is ``data_dir`` itself);
            the first is where a download is saved.
        urls: official source and mirrors, tried in order; each must serve ``names[0]``.
        checksum: digest a download must match.
        download: fetch the file if it is missing.

    Raises:
        DataNotFoundError: missing and ``download`` is false.
        DownloadError, ChecksumError: as :func:`download_url`.
    """
    found = find_file(data_dir, names, subdirs)
    if found is not None:
        return found
    folders = search_dirs(data_dir, subdirs)
    if not download:
        raise DataNotFoundError(names[0], folders, urls)
    if not urls:
        raise DataNotFoundError(names[0], folders, urls, note="download=True cannot help here.")
    return download_url(urls, folders[0] / names[0], checksum=checksum)
