"""minternet.hub against a local HTTP server serving a copy of the sample files."""

from __future__ import annotations

import functools
import hashlib
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from minternet import hub, transfer
from minternet.index_cache import ENV_CACHE

SAMPLES = Path(__file__).parents[2] / "shared" / "samples" / "interhand2.6m_mmpose_tests"
UNREACHABLE = "http://127.0.0.1:9/"  # discard port: nothing listens, connect is refused


class Server:
    """A threaded http.server on a free port that counts the requests it answers."""

    def __init__(self, root: Path, truncate: str | None = None) -> None:
        self.root, self.truncate, self.requests = root, truncate, 0
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                path = Path(self.translate_path(self.path))
                if path.name != server.truncate:
                    return super().do_GET()
                # Promise the whole file, send half, hang up.
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(hub.ENV_SAMPLES, raising=False)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache_root"))  # never the real ~/.cache


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """A writable copy of the seven sample files (served under ``/data/``)."""
    if not SAMPLES.is_dir():
        pytest.skip(f"sample folder {SAMPLES} not present")
    dest = tmp_path / "www" / "data"
    dest.mkdir(parents=True)
    for name in hub.SAMPLES_SHA256:
        shutil.copyfile(SAMPLES / name, dest / name)
    return dest


@pytest.fixture
def server(served: Path) -> Iterator[Server]:
    srv = Server(served.parent)
    yield srv
    srv.stop()


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def tamper(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")


def test_download_into_empty_cache(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = hub.interhand_samples(cache, server.url, offline_dirs=())
    assert out == cache
    assert digests(cache) == hub.SAMPLES_SHA256  # exactly the seven, no leftover temp files
    assert server.requests == 7


def test_default_cache_location_and_progress_bar(server: Server, tmp_path: Path) -> None:
    out = hub.interhand_samples(base_url=server.url, offline_dirs=(), progress=True)
    assert out == tmp_path / "cache_root" / "interhand2.6m_samples"
    assert digests(out) == hub.SAMPLES_SHA256


def test_second_call_stays_offline(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    hub.interhand_samples(cache, server.url, offline_dirs=(), progress=False)
    assert server.requests == 7
    assert hub.interhand_samples(cache, server.url, offline_dirs=()) == cache
    assert server.requests == 7
    server.stop()
    assert hub.interhand_samples(cache, server.url, offline_dirs=()) == cache


def test_bad_cached_file_is_fetched_again(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    hub.interhand_samples(cache, server.url, offline_dirs=(), progress=False)
    tamper(cache / "image44669.jpg")
    (cache / "image69148.jpg").unlink()
    hub.interhand_samples(cache, server.url, offline_dirs=(), progress=False)
    assert server.requests == 9
    assert digests(cache) == hub.SAMPLES_SHA256


def test_corrupt_file_on_server(server: Server, served: Path, tmp_path: Path) -> None:
    tamper(served / "image29590.jpg")
    cache = tmp_path / "cache"
    with pytest.raises(hub.ChecksumError, match=r"image29590\.jpg") as info:
        hub.interhand_samples(cache, server.url, offline_dirs=[SAMPLES], progress=False)
    assert hub.SAMPLES_SHA256["image29590.jpg"] in str(info.value)
    actual = transfer.file_digest(served / "image29590.jpg")
    assert info.value.actual == actual != info.value.expected
    assert not (cache / "image29590.jpg").exists()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # temp file cleaned up


def test_connection_closed_mid_file(served: Path, tmp_path: Path) -> None:
    srv = Server(served.parent, truncate="test_interhand2.6m_joint_3d.json")
    try:
        dest = tmp_path / "one" / "test_interhand2.6m_joint_3d.json"
        with pytest.raises(ConnectionError, match="closed after"):
            transfer.download(srv.url + dest.name, dest, progress=False)
        assert list(dest.parent.iterdir()) == []
        cache = tmp_path / "cache"
        with pytest.raises(hub.SamplesNotFoundError, match="closed after"):
            hub.interhand_samples(cache, srv.url, offline_dirs=(), progress=False)
        assert not (cache / dest.name).exists()
        assert not [p for p in cache.iterdir() if p.name.startswith(".")]
    finally:
        srv.stop()


def test_env_folder_is_used(served: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(hub.ENV_SAMPLES, str(served))
    assert hub.interhand_samples(tmp_path / "cache", UNREACHABLE, offline_dirs=()) == served
    assert not (tmp_path / "cache").exists()


def test_env_folder_with_tampered_file(served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tamper(served / "test_interhand2.6m_data.json")
    monkeypatch.setenv(hub.ENV_SAMPLES, str(served))
    with pytest.raises(hub.ChecksumError, match=r"MINTERNET_SAMPLES.*test_interhand2\.6m_data"):
        hub.interhand_samples(offline_dirs=[SAMPLES])  # a good fallback must not hide it


def test_env_folder_missing_file(served: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (served / "image2017.jpg").unlink()
    monkeypatch.setenv(hub.ENV_SAMPLES, str(served))
    with pytest.raises(FileNotFoundError, match=r"MINTERNET_SAMPLES.*image2017\.jpg"):
        hub.interhand_samples(offline_dirs=[SAMPLES])


def test_offline_copy_is_used_when_download_fails(tmp_path: Path) -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"sample folder {SAMPLES} not present")
    # Default lookup: ../shared beside the repository root.
    assert hub.interhand_samples(tmp_path / "cache", UNREACHABLE) == SAMPLES.resolve()


def test_offline_lookup_walks_up_from_cwd(
    served: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "shared" / "samples" / "interhand2.6m_mmpose_tests"
    shutil.copytree(served, copy)
    book = tmp_path / "project" / "book"
    book.mkdir(parents=True)
    monkeypatch.chdir(book)
    assert copy.resolve() in hub.default_offline_dirs()


def test_no_source_fails_fast_with_advice(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(hub.SamplesNotFoundError) as info:
        hub.interhand_samples(tmp_path / "cache", UNREACHABLE, offline_dirs=[tmp_path / "none"])
    assert time.monotonic() - start < 10
    message = str(info.value)
    for part in ("MINTERNET_SAMPLES", UNREACHABLE, "none", "image2017.jpg", "internet"):
        assert part in message
