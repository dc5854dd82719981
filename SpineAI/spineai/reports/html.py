"""Small HTML building blocks for self-contained reports: escaped tables, embedded PNG pictures, one page.

Pictures are embedded as ``data:image/png;base64,...`` URIs, so a report is a single file that opens
anywhere (e-mail, a shared drive, a browser without network access) and never points at files that may
move.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["banner", "esc", "figure_img", "page", "png_img", "read_table", "table"]

_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1200px; color: #222; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 1.6em; border-bottom: 2px solid #2b5c8a; padding-bottom: 4px; }
h2 { font-size: 1.25em; color: #2b5c8a; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin-bottom: 4px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eef3f8; }
tr:nth-child(even) td { background: #fafafa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 6px 12px 12px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
.note { color: #555; font-size: 0.9em; }
.bad { color: #a40000; }
.good { color: #1d6b1d; }
.warn { color: #8a5300; }
.banner { border: 2px solid #a40000; background: #fdecea; color: #7a0000; padding: 8px 12px; margin: 12px 0;
          font-weight: bold; border-radius: 4px; }
.banner.caution { border-color: #b26a00; background: #fff4e5; color: #6b4000; }
.banner ul { margin: 4px 0 0; font-weight: normal; }
tr.flagged td, tr.flagged:nth-child(even) td { background: #fdecea; }
.mark { color: #a40000; font-weight: bold; }
details { margin: 6px 0 12px; }
summary { cursor: pointer; color: #2b5c8a; }
.footer { margin-top: 3em; font-size: 0.8em; color: #777; border-top: 1px solid #ddd; padding-top: 6px; }
"""


def esc(value: Any) -> str:
    """``value`` as HTML-escaped text (``None`` -> empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    headers: Mapping[str, str] | None = None,
    links: Mapping[str, str] | None = None,
    fmt: Mapping[str, str] | None = None,
    row_class: str | None = None,
    cell_class: Mapping[str, str] | None = None,
) -> str:
    """An HTML table of ``rows`` (dicts) with ``columns``.

    Args:
        headers: column -> header text (default: the column name).
        links: column -> key of a row value holding a relative link for that cell.
        fmt: column -> format spec for numbers (e.g. ``".1f"``).
        row_class: key of a row value holding the CSS class of its ``<tr>`` (e.g. ``"flagged"``).
        cell_class: column -> CSS class of its non-empty cells (e.g. ``"mark"``); with ``row_class``, only in
            the rows that have a class (the marked ones).
    """
    headers = headers or {}
    links = links or {}
    fmt = fmt or {}
    cell_class = cell_class or {}
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(headers.get(c, c))}</th>" for c in columns) + "</tr>"]
    for row in rows:
        tr_class = row.get(row_class) if row_class else None
        marked = bool(tr_class) or not row_class
        cells = []
        for c in columns:
            value = row.get(c)
            if c in fmt and value not in (None, "") and _is_number(str(value)):
                text = format(float(value), fmt[c])
            else:
                text = "" if value is None else str(value)
            body = esc(text)
            link = row.get(links[c]) if c in links else None
            if link:
                body = f'<a href="{esc(link)}">{body}</a>'
            mark = cell_class.get(c) if text and marked else None
            classes = [n for n in ("num" if _is_number(text) else None, mark) if n]
            cls = f' class="{esc(" ".join(classes))}"' if classes else ""
            cells.append(f"<td{cls}>{body}</td>")
        out.append((f'<tr class="{esc(tr_class)}">' if tr_class else "<tr>") + "".join(cells) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def png_img(
    source: str | os.PathLike | bytes, alt: str, caption: str | None = None, width: int | None = None
) -> str:
    """A ``<figure>`` with the PNG (file or bytes) embedded as a base64 data URI."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    style = f' style="width:{int(width)}px"' if width else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{esc(alt)}"{style}>{cap}</figure>'


def banner(title: str, items: Sequence[str] = (), caution: bool = False) -> str:
    """A boxed warning at the top of a page: ``title`` in bold and the ``items`` as a list below it.

    Args:
        caution: orange (something to read) instead of red (something to check before acting).
    """
    listed = "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>" if items else ""
    cls = "banner caution" if caution else "banner"
    return f'<div class="{cls}" role="alert">{esc(title)}{listed}</div>'


def figure_img(fig: Any, alt: str, caption: str | None = None, dpi: int = 90) -> str:
    """A matplotlib figure rendered to PNG and embedded (the figure is closed)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return png_img(buffer.getvalue(), alt, caption)


def read_table(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of a TSV (or CSV, by extension) file; empty when the file is absent."""
    p = Path(path)
    if not p.is_file():
        return [], []
    delimiter = "," if p.suffix.lower() == ".csv" else "\t"
    with p.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        rows = [dict(r) for r in reader]
        return list(reader.fieldnames or []), rows


def page(title: str, body: Iterable[str], subtitle: str | None = None) -> str:
    """A complete HTML document (inline CSS, no external resources)."""
    from .. import __version__

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    if subtitle:
        parts.append(f'<p class="note">{esc(subtitle)}</p>')
    parts.extend(body)
    parts.append(
        f'<div class="footer">SpineAI {esc(__version__)}. Coordinates LPS (mm), areas mm2, angles degrees. '
        "Research use only; not for clinical decisions.</div>"
    )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
