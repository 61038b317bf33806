"""`make test` and `make book` check what the system must provide before anything else, and
stop with one line naming what is missing and how to install it; `make help` lists targets."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
pytestmark = pytest.mark.skipif(MAKE is None, reason="make is not installed")


def run_make(folder: Path, target: str, tools: dict[str, str]) -> subprocess.CompletedProcess:
    """``make TARGET`` with this repository's Makefile in ``folder`` (no .venv there) and a
    PATH that holds only ``tools`` (name -> executable)."""
    shutil.copy(ROOT / "Makefile", folder / "Makefile")
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, target_path in tools.items():
        (bin_dir / name).symlink_to(target_path)
    env = {"PATH": str(bin_dir), "HOME": str(folder)}
    return subprocess.run([MAKE, target], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=60)


def basics() -> dict[str, str]:
    tools = {"python3": sys.executable}
    for name in ("sh", "grep", "sed", "expand"):
        if found := shutil.which(name):
            tools[name] = found
    return tools


def test_help_lists_the_targets() -> None:
    out = subprocess.run([MAKE, "help"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    for target in ("help", "test", "book", "clean", "lint"):
        assert f"make {target} " in out
    assert "No rule" not in out


@pytest.mark.parametrize(
    ("target", "missing", "line"),
    [
        ("book", "npm", "make: npm (Node.js's package manager; the book bundles its JavaScript "
                        "with it) is missing; install it: Debian/Ubuntu: sudo apt-get install npm"),
        ("test", "chromium", "make: chromium (for the browser tests of the built book) is "
                             "missing; install it: Debian: sudo apt-get install chromium"),
    ],
)
def test_a_missing_tool_stops_at_once_with_one_line(
    tmp_path: Path, target: str, missing: str, line: str
) -> None:
    tools = basics()
    result = run_make(tmp_path, target, tools)
    assert result.returncode == 2
    message = [ln for ln in result.stderr.splitlines()
               if ln.startswith("make: ") and "***" not in ln]
    assert len(message) == 1 and message[0].startswith(line)
    assert "macOS" in message[0]
    assert not (tmp_path / ".venv").exists()  # stopped before creating anything


def test_python_without_venv_names_python3_venv(tmp_path: Path) -> None:
    # Debian's python3 without python3-venv: `import ensurepip` fails.
    fake = tmp_path / "python3-no-venv"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in *ensurepip*) exit 1;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    tools = {**basics(), "python3": str(fake), "npm": "/bin/true", "chromium": "/bin/true"}
    for target in ("test", "book"):
        (folder := tmp_path / target).mkdir()
        result = run_make(folder, target, tools)
        assert result.returncode == 2
        assert ("make: Python's venv module with pip (python3-venv) is missing; install it: "
                "Debian/Ubuntu: sudo apt-get install python3-venv") in result.stderr


def test_everything_present_passes_the_checks(tmp_path: Path) -> None:
    tools = {**basics(), "npm": "/bin/true", "chromium": "/bin/true"}
    for target in ("prerequisites-test", "prerequisites-book"):
        (folder := tmp_path / target).mkdir()
        result = run_make(folder, target, tools)
        assert result.returncode == 0, result.stderr
