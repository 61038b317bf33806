"""IPython startup file for the kernels that execute the book's chapters.

``sphinx_offline.py`` copies this file into the IPython profile it gives those kernels. It
makes ``fig.show()`` emit only the figure's ``<div>`` and its ``Plotly.newPlot`` call, as
``text/html``, to be drawn by the ``plotly.min.js`` every page of the book loads from
``_static/vendor/``. Plotly's own choices do not fit an offline site: in a kernel run by
nbclient it picks the ``application/vnd.plotly.v1+json`` mime type, which myst-nb cannot
show, and its HTML renderers embed plotly.js and load MathJax from a CDN.

Nothing here runs on Colab or in a user's Jupyter: there plotly's default applies.
"""


def _use_book_renderer() -> None:
    """Register the ``book`` plotly renderer and make it the default."""
    import plotly.io as pio
    from plotly.io.base_renderers import MimetypeRenderer

    class BookRenderer(MimetypeRenderer):
        """A figure as a ``<div>`` plus the script that draws it with the page's plotly.js."""

        def to_mimebundle(self, fig_dict: dict) -> dict[str, str]:
            html = pio.to_html(
                fig_dict,
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


_use_book_renderer()
# Startup files run in the notebook's namespace: leave nothing behind.
del _use_book_renderer
