"""IPython startup file for the kernels that execute the book's chapters.

``sphinx_offline.py`` copies this file into the IPython profile it gives those kernels. It
makes ``fig.show()`` emit only the figure's ``<div>`` and its ``Plotly.newPlot`` call, as
``text/html``, to be drawn by the ``plotly.min.js`` every page of the book loads from
``_static/vendor/``. Plotly's own choices do not fit an offline site: in a kernel run by
nbclient it picks the ``application/vnd.plotly.v1+json`` mime type, which myst-nb cannot
show, and its HTML renderers embed plotly.js and load MathJax from a CDN.

The figures fit the page's column whatever size a chapter gave them: a fixed ``width`` is
dropped, so the figure takes the column's width and follows it when the window is resized,
and a title gets room above the plot, below the toolbar plotly shows on hover.

Nothing here runs on Colab or in a user's Jupyter: there plotly's default applies.
"""

from collections.abc import Callable


def fit_the_column(layout: dict) -> dict:
    """A copy of a figure's ``layout`` that takes the column's width, with room for its
    title (px) between the top of the figure and the plot."""
    layout = {k: v for k, v in layout.items() if k != "width"}
    layout["autosize"] = True
    title = layout.get("title")
    if title.get("text") if isinstance(title, dict) else title:
        margin = dict(layout.get("margin") or {})
        margin["t"] = max(margin.get("t", 100), 70)  # plotly's default top margin is 100
        layout["margin"] = margin
        if isinstance(title, str):
            title = {"text": title}
        # Below plotly's toolbar (about 30 px high), which shows at the top right on hover.
        layout["title"] = {**title, "y": 1, "yref": "container", "yanchor": "top",
                           "pad": {"t": 32}}
    return layout


def _use_book_renderer(fit: Callable[[dict], dict]) -> None:
    """Register the ``book`` plotly renderer, which lays figures out with ``fit``, and make
    it the default."""
    import plotly.io as pio
    from plotly.io.base_renderers import MimetypeRenderer

    class BookRenderer(MimetypeRenderer):
        """A figure as a ``<div>`` plus the script that draws it with the page's plotly.js."""

        def to_mimebundle(self, fig_dict: dict) -> dict[str, str]:
            fig_dict = {**fig_dict, "layout": fit(fig_dict.get("layout", {}))}
            html = pio.to_html(
                fig_dict,
                config={"responsive": True},
                include_plotlyjs=False,
                include_mathjax=False,
                full_html=False,
                default_width="100%",
                default_height=525,
                validate=False,
            )
            return {"text/html": html}

    pio.renderers["book"] = BookRenderer()
    pio.renderers.default = "book"


_use_book_renderer(fit_the_column)
# Startup files run in the notebook's namespace: leave nothing behind.
del _use_book_renderer, fit_the_column, Callable
