"""A self-contained HTML page for reports: sections, embedded figures, tables, commands.

The reports of studies (``hdnnp study``) and reproductions are single files a user can
mail or archive: every figure is embedded as a base64 PNG (no side files to lose), tables
are plain HTML, and each figure may carry the command that made it.  Text is escaped
(:func:`html.escape`); nothing is fetched from the network when the page is opened.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path

from hdnnp.fileio import atomic_write_text

__all__ = ["HtmlPage"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #ccc; }
figure { display: inline-block; margin: 0.5rem 1rem 1rem 0; vertical-align: top; }
figure img { max-width: 34rem; border: 1px solid #eee; }
figure.wide img, figure.wide figcaption { max-width: 69rem; }
figcaption { font-size: 0.9rem; max-width: 34rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem 0; font-size: 0.92rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: right; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
tr.chosen td { background: #e8f4e8; font-weight: 600; }
code, pre { background: #f6f6f6; font-size: 0.85rem; }
pre { padding: 0.4rem; white-space: pre-wrap; }
"""


def _cell(value, digits: int) -> tuple[str, bool]:
    """Text of a table cell and whether it is text (left-aligned) rather than a number."""
    if value is None:
        return "—", False
    if isinstance(value, bool):
        return str(value), True
    if isinstance(value, int):
        return str(value), False
    if isinstance(value, float):
        if value != value:  # NaN
            return "—", False
        return f"{value:.{digits}g}", False
    return str(value), True


class HtmlPage:
    """Build a report page piece by piece, then :meth:`write` it atomically."""

    def __init__(self, title: str):
        self.title = title
        self._parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str) -> None:
        self._parts.append(f"<h2>{html.escape(text)}</h2>")

    def paragraph(self, text: str) -> None:
        self._parts.append(f"<p>{html.escape(text)}</p>")

    def command(self, text: str) -> None:
        self._parts.append(f"<pre>{html.escape(text)}</pre>")

    def figure(self, path: str | Path, caption: str = "", command: str | None = None,
               wide: bool = False) -> None:
        """Embed the PNG at ``path`` (``wide``: a figure of several panels, full page
        width); a missing file gets a visible note, not a crash."""
        path = Path(path)
        cap = html.escape(caption)
        if command:
            cap += f"<br><code>{html.escape(command)}</code>"
        if not path.is_file():
            self._parts.append(f"<p><em>figure {html.escape(path.name)} was not made"
                               f"</em> {cap}</p>")
            return
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        cls = ' class="wide"' if wide else ""
        self._parts.append(f'<figure{cls}><img alt="{html.escape(path.stem)}" '
                           f'src="data:image/png;base64,{data}"><figcaption>{cap}'
                           "</figcaption></figure>")

    def table(self, rows: Sequence[Mapping], columns: Sequence[str] | None = None,
              highlight: int | None = None, digits: int = 4) -> None:
        """A table of ``rows`` (dicts); ``highlight`` marks one row (the chosen setting)."""
        if not rows:
            self._parts.append("<p><em>no rows</em></p>")
            return
        columns = list(columns or rows[0].keys())
        head = "".join(f'<th class="text">{html.escape(str(c))}</th>' for c in columns)
        body = []
        for k, row in enumerate(rows):
            cells = []
            for c in columns:
                text, is_text = _cell(row.get(c), digits)
                cls = ' class="text"' if is_text else ""
                cells.append(f"<td{cls}>{html.escape(text)}</td>")
            cls = ' class="chosen"' if k == highlight else ""
            body.append(f"<tr{cls}>{''.join(cells)}</tr>")
        self._parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")

    def render(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                f"<body>\n{chr(10).join(self._parts)}\n</body></html>\n")

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        atomic_write_text(path, self.render())
        return path
