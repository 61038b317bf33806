"""Shared fixtures and reference values: the real InterHand2.6M sample frames (reached
through ../shared), what mmpose derives from them, and the small training runs' tree."""

from __future__ import annotations

import importlib.util
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from minternet.synth.plan import SynthSpec
from minternet.synth.write import write_dataset

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "interhand2.6m_mmpose_tests"
DATA_JSON = "test_interhand2.6m_data.json"
CAMERA_JSON = "test_interhand2.6m_camera.json"
JOINT_JSON = "test_interhand2.6m_joint_3d.json"

# Values derived by mmpose's InterHand3DDataset for the four real frames, from the samples
# README (ann id: abs_depth [A_R, A_L], rel_root_depth, rel_root_valid, bbox centre, side).
MMPOSE_DERIVED = {
    326750: ([1111.0215, 1168.8142], 57.7927, 1, (126.0973, 236.2866), 231.3223),
    286291: ([1119.1948, 1079.6545], -39.5403, 1, (198.0191, 167.1706), 218.7573),
    680801: ([657.7856, 1071.4779], 413.6923, 0, (124.1042, 175.8060), 228.6990),
    471953: ([1159.8293, 71.3281], -1088.5012, 0, (199.7786, 120.2126), 230.6694),
}

# ResNet-18, 4 x 4 heatmaps after one deconvolution: a 64 x 64 input.
SMALL_RUN = {
    "heatmap_size": "4",
    "deconv_layers": "1",
    "deconv_channels": "16",
    "depth_bins": "8",
    "root_bins": "8",
    "workers": "0",
    "val_at_start": "false",
}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Keep every index cache and download of the suite out of the user's home."""
    monkeypatch.setenv("MINTERNET_CACHE", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The read-only folder of the four real frames and their three annotation files."""
    if not (SAMPLES / DATA_JSON).is_file():
        raise FileNotFoundError(f"{SAMPLES}: the real InterHand2.6M sample frames are missing")
    return SAMPLES


@pytest.fixture
def flat_copy(samples_dir: Path, tmp_path: Path) -> Path:
    """A writable copy of the sample folder, for tests that break or touch files."""
    dest = tmp_path / "flat"
    shutil.copytree(samples_dir, dest)
    for path in dest.iterdir():
        path.chmod(0o644)
    return dest


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic v1.0 tree (24 train, 8 val images) for training runs."""
    root = tmp_path_factory.mktemp("tree")
    spec = SynthSpec(images={"train": 24, "val": 8}, captures=1, sequences=4, frames=4)
    write_dataset(spec, root, workers=1, progress=False)
    return root


def options(overrides: dict[str, str]) -> list[str]:
    return [item for k, v in overrides.items() for item in (f"--{k.replace('_', '-')}", v)]


def load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value))


def load_tool(name: str, folder: str = "book/tools") -> ModuleType:
    """Import a script from ``book/tools`` or another folder of the repository (scripts are
    not part of the package)."""
    path = Path(__file__).resolve().parents[1] / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Server:
    """A threaded HTTP server over ``root`` that answers HEAD and GET, honours ``Range`` unless
    ``ignore_range``, logs (method, file, Range header), and for a file in ``drop`` sends half
    of the body and hangs up (``drop[name]`` times). A GET of a file in ``extra`` gets those
    bytes appended (announced too); one in ``trickle`` is sent a byte every 20 ms."""

    def __init__(self, root: Path, ignore_range: bool = False) -> None:
        self.root, self.ignore_range = root, ignore_range
        self.drop: dict[str, int] = {}
        self.extra: dict[str, bytes] = {}
        self.trickle: set[str] = set()
        self.log: list[tuple[str, str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                server.answer(self)

            def do_GET(self) -> None:
                server.answer(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/release/"
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        name, asked = handler.path.rsplit("/", 1)[-1], handler.headers.get("Range")
        self.log.append((handler.command, name, asked))
        path = self.root / name
        if not path.is_file():
            handler.send_error(404)
            return
        data, start = path.read_bytes(), 0
        if asked and not self.ignore_range:
            start = int(asked.removeprefix("bytes=").split("-")[0])
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            handler.send_response(200)
        body = data[start:] + (self.extra.get(name, b"") if handler.command == "GET" else b"")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if handler.command == "GET":
            if self.drop.get(name, 0) > 0:
                self.drop[name] -= 1
                body = body[: len(body) // 2]
                handler.close_connection = True
            if name in self.trickle:
                for i in range(len(body)):
                    time.sleep(0.02)
                    try:
                        handler.wfile.write(body[i : i + 1])
                        handler.wfile.flush()
                    except OSError:  # the client gave up
                        return
                return
            handler.wfile.write(body)

    def gets(self, name: str | None = None) -> list[tuple[str, str, str | None]]:
        return [r for r in self.log if r[0] == "GET" and name in (None, r[1])]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
