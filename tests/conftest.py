"""Shared fixtures: the real InterHand2.6M sample frames, reached through ../shared."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import ModuleType

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "interhand2.6m_mmpose_tests"
DATA_JSON = "test_interhand2.6m_data.json"
CAMERA_JSON = "test_interhand2.6m_camera.json"
JOINT_JSON = "test_interhand2.6m_joint_3d.json"


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
