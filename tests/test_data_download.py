"""Fetching, checksums, archive extraction and the not-found error of pyhbnode.data.download.

No test touches the network: downloads use file:// URLs, "offline" is a closed local port.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import socket
import tarfile
import zipfile
from pathlib import Path

import pytest

from pyhbnode.data import download as dl
from pyhbnode.data.download import (
    Checksum, ChecksumError, DataNotFoundError, DownloadError, download_url, extract_members,
    fetch_and_unpack, file_digest, find_file, locate_or_download, verify_checksum,
)

PAYLOAD = b"heavy ball " * 1000


def _closed_port_url() -> str:
    # Bind then close: nothing listens there, so a connection is refused at once, like offline.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/file.bin"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "plain.bin").write_bytes(PAYLOAD)
    with gzip.open(src / "packed.bin.gz", "wb") as f:
        f.write(PAYLOAD)
    return src


def test_digest_of_gz_is_of_decompressed_content(source: Path) -> None:
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    assert file_digest(source / "plain.bin", "md5") == md5
    assert file_digest(source / "packed.bin.gz", "md5") == md5
    assert file_digest(source / "packed.bin.gz", "md5", decompress=False) != md5
    verify_checksum(source / "packed.bin.gz", Checksum("md5", md5))
    verify_checksum(source / "packed.bin.gz", Checksum("sha256", hashlib.sha256(PAYLOAD).hexdigest()))
    raw_md5 = hashlib.md5((source / "packed.bin.gz").read_bytes()).hexdigest()
    verify_checksum(source / "packed.bin.gz", Checksum("md5", raw_md5, decompressed=False))


def test_digest_of_several_files_is_of_their_concatenation(source: Path) -> None:
    both = [source / "plain.bin", source / "packed.bin.gz"]
    assert file_digest(both, "sha256") == hashlib.sha256(PAYLOAD + PAYLOAD).hexdigest()


def test_checksum_mismatch_names_file_and_digests(source: Path) -> None:
    with pytest.raises(ChecksumError, match=r"plain\.bin.*expected 0{32}"):
        verify_checksum(source / "plain.bin", Checksum("md5", "0" * 32))


def test_download_from_file_url_and_gz_checksum(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "packed.bin.gz"
    got = download_url((source / "packed.bin.gz").as_uri(), dest,
                       checksum=Checksum("md5", hashlib.md5(PAYLOAD).hexdigest()))
    assert got == dest and dest.read_bytes() == (source / "packed.bin.gz").read_bytes()
    assert [p.name for p in dest.parent.iterdir()] == ["packed.bin.gz"]  # no temporary left


def test_download_bad_checksum_saves_nothing(source: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "plain.bin"
    with pytest.raises(ChecksumError, match="nothing was saved"):
        download_url((source / "plain.bin").as_uri(), dest, checksum=Checksum("sha256", "f" * 64))
    assert list(dest.parent.iterdir()) == []


def test_download_offline_is_a_clear_error(tmp_path: Path) -> None:
    url = _closed_port_url()
    with pytest.raises(DownloadError, match="offline") as info:
        download_url(url, tmp_path / "file.bin", timeout=5)
    assert url in str(info.value) and str(tmp_path / "file.bin") in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_download_falls_back_to_mirror(source: Path, tmp_path: Path) -> None:
    urls = [_closed_port_url(), (source / "plain.bin").as_uri()]
    got = download_url(urls, tmp_path / "plain.bin", timeout=5)
    assert got.read_bytes() == PAYLOAD


def test_missing_file_message(tmp_path: Path) -> None:
    url = "https://example.org/data/thing.csv"
    with pytest.raises(DataNotFoundError) as info:
        locate_or_download(tmp_path, ["thing.csv"], subdirs=("things", "."), urls=[url])
    err = info.value
    msg = str(err)
    assert isinstance(err, FileNotFoundError)
    assert "thing.csv" in msg and url in msg and "download=True" in msg
    assert str(tmp_path / "things") in msg and err.searched == [tmp_path / "things", tmp_path]
    assert "Errno" not in msg


def test_no_fetch_without_download_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("network used without download=True")

    monkeypatch.setattr(dl.urllib.request, "urlopen", forbidden)
    with pytest.raises(DataNotFoundError):
        locate_or_download(tmp_path, ["x.bin"], urls=["https://example.org/x.bin"])


def test_locate_prefers_subdir_order_and_downloads_into_first(source: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "b").mkdir(parents=True)
    (root / "b" / "plain.bin").write_bytes(b"b")
    assert find_file(root, ["plain.bin"], ("a", "b", ".")) == root / "b" / "plain.bin"
    assert locate_or_download(root, ["plain.bin"], subdirs=("a", "b")) == root / "b" / "plain.bin"
    got = locate_or_download(root, ["packed.bin.gz"], subdirs=("a", "b"),
                             urls=[(source / "packed.bin.gz").as_uri()], download=True)
    assert got == root / "a" / "packed.bin.gz"


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_extract_zip_and_tar_keep_suffixes(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(_zip_bytes({"walker/r_0.npy": b"0", "walker/readme.txt": b"t"}))
    with tarfile.open(tmp_path / "b.tar.gz", "w:gz") as tf:
        info = tarfile.TarInfo("batches/x.bin")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    got = extract_members(tmp_path / "a.zip", tmp_path / "z", keep=[".npy"])
    assert got == [tmp_path / "z/walker/r_0.npy"]
    assert extract_members(tmp_path / "b.tar.gz", tmp_path / "t") == [tmp_path / "t/batches/x.bin"]
    assert (tmp_path / "t/batches/x.bin").read_bytes() == b"abc"


def test_extract_refuses_path_traversal(tmp_path: Path) -> None:
    (tmp_path / "evil.zip").write_bytes(_zip_bytes({"../escape.npy": b"x"}))
    with pytest.raises(ValueError, match="unsafe"):
        extract_members(tmp_path / "evil.zip", tmp_path / "out")
    assert not (tmp_path / "escape.npy").exists()


def test_fetch_and_unpack_removes_archive(tmp_path: Path) -> None:
    (tmp_path / "src.zip").write_bytes(_zip_bytes({"walker/r_1.npy": b"1"}))
    dest = tmp_path / "data"
    files = fetch_and_unpack((tmp_path / "src.zip").as_uri(), dest, "walker.zip", keep=[".npy"])
    assert files == [dest / "walker/r_1.npy"] and not (dest / "walker.zip").exists()
