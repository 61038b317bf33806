"""Sphinx extension of the minternet book: executed chapters that render with no network.

``_config.yml`` loads it (``sphinx.local_extensions``). It does four things:

1. It gives the Jupyter kernels that myst-nb starts to execute the chapters an IPython profile
   of their own, inside the build folder, whose startup file (``plotly_startup.py``) makes
   ``fig.show()`` emit HTML drawn by the page's local ``plotly.min.js``. The chapters need no
   plotting setup of their own, and on Colab plotly's default renderer is left alone.
2. Before anything is built it checks that every local script the configuration points at
   (``mathjax_path``, ``nb_ipywidgets_js``, ``html_js_files``) is in ``_static/``, where
   ``offline_assets.py`` copies them, so a missing asset fails the build instead of leaving
   pages without plots, widgets or math.
3. It stops jupyter-book from loading every ``.js`` file under ``_static/vendor/`` on every
   page (jupyter-book 1 adds each ``.js`` and ``.css`` file it finds under ``_static/`` to
   ``html_js_files``/``html_css_files``): only the scripts named in ``_config.yml`` are loaded,
   in the order it sets. MathJax's on-demand components stay where MathJax looks for them.
4. It has the chapters executed by ``chapter_runner.py`` instead of nbclient's own client
   (myst-nb executes them through jupyter-cache, which calls ``nbclient.execute``): a cell
   no longer waits out the cell timeout for a reply it missed, and a stuck cell fails fast
   with an error naming the chapter and the cell.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import chapter_runner  # in this folder, which jupyter-book puts on sys.path
from jupyter_cache.executors import utils as jupyter_cache_utils
from nbformat import NotebookNode
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.errors import ConfigError

HERE = Path(__file__).resolve().parent
VENDOR = "vendor/"  # inside _static/, filled by offline_assets.py


def use_book_kernel_profile(app: Sphinx) -> Path:
    """Point the kernels started by this process at a fresh IPython profile; return its dir."""
    ipython_dir = Path(app.outdir).parent / ".ipython"
    startup = ipython_dir / "profile_default" / "startup"
    if startup.exists():
        shutil.rmtree(startup)
    startup.mkdir(parents=True)
    shutil.copyfile(HERE / "plotly_startup.py", startup / "00-plotly-offline.py")
    # Kernels are child processes and inherit this environment. The build then also ignores
    # the user's own IPython profile, which keeps the executed output reproducible.
    os.environ["IPYTHONDIR"] = str(ipython_dir)
    return ipython_dir


def drop_auto_vendor_files(app: Sphinx, config: Config) -> None:
    """Remove the vendor files jupyter-book added to every page on its own.

    It adds them as bare paths; the ones ``_config.yml`` lists carry attributes (at least a
    priority), so they are kept.
    """
    config.html_js_files = [
        e for e in config.html_js_files if not (isinstance(e, str) and e.startswith(VENDOR))
    ]
    config.html_css_files = [
        e for e in config.html_css_files if not (isinstance(e, str) and e.startswith(VENDOR))
    ]


def local_scripts(app: Sphinx) -> list[str]:
    """The scripts the configuration loads from ``_static/`` (paths relative to it)."""
    paths = [app.config.mathjax_path, *app.config.nb_ipywidgets_js]
    for entry in app.config.html_js_files:
        paths.append(entry if isinstance(entry, str) else entry[0])
    return [p for p in paths if p and "://" not in p]


def check_local_scripts(app: Sphinx) -> None:
    """Fail early when a script the pages need has not been copied into ``_static/``."""
    static = Path(app.srcdir) / "_static"
    missing = [p for p in local_scripts(app) if not (static / p).is_file()]
    if missing:
        raise ConfigError(
            f"missing in {static}: {', '.join(missing)}. Run `make book`, or "
            "`npm ci` in book/ and then `python book/tools/offline_assets.py`."
        )


def chapter_being_read(app: Sphinx) -> str:
    """The file name of the document Sphinx is reading now, e.g. ``01_dataset_geometry.ipynb``."""
    docname = app.env.temp_data.get("docname") if app.env is not None else None
    return Path(app.env.doc2path(docname)).name if docname else "notebook"


def execute_chapters_with_chapter_runner(app: Sphinx) -> None:
    """Make jupyter-cache execute the notebooks myst-nb hands it with ``chapter_runner``."""

    def execute(nb: NotebookNode, cwd: str | None = None, **kwargs: Any) -> NotebookNode:
        return chapter_runner.execute(nb, cwd=cwd, chapter=chapter_being_read(app), **kwargs)

    jupyter_cache_utils.executenb = execute


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the extension."""
    app.connect("config-inited", drop_auto_vendor_files)
    app.connect("builder-inited", use_book_kernel_profile)
    app.connect("builder-inited", check_local_scripts)
    app.connect("builder-inited", execute_chapters_with_chapter_runner)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
