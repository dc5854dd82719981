"""Is a report page self-contained? Checks of its HTML (the file, or the DOM a browser built from it).

A SpineAI report must open anywhere without network access and without the files it was made from:

* it has a ``<title>`` (and an ``<h1>`` with the same text, as :func:`spineai.reports.html.page` writes);
* every ``<img>`` is embedded as a ``data:image/png;base64,...`` URI whose bytes decode as a PNG image;
* nothing is loaded from elsewhere: no ``src`` / ``srcset`` / ``poster`` / ``data`` / ``background``
  attribute, ``<link href>``, ``<use href>``, CSS ``url(...)`` or ``@import`` that is not a ``data:`` URI.
  Hyperlinks (``<a href>``, e.g. to the case reports of a cohort) are navigation, not resources, and are
  allowed.

:func:`page_problems` returns the problems in plain words (empty: the page is fine); it is what
``benchmarks/check_report_render.py`` applies to the DOM that headless Chromium built, and what the tests
apply to the files without Chromium.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["PNG_SIGNATURE", "PageFacts", "decode_png_data_uri", "page_problems", "parse_page"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: attributes that make a browser fetch what they name, on any element
_RESOURCE_ATTRS = ("src", "srcset", "poster", "data", "background", "lowsrc", "dynsrc")
#: elements whose ``href`` is fetched (a stylesheet, an icon, an SVG sprite), unlike ``<a href>``
_HREF_RESOURCE_TAGS = ("link", "use", "image", "feimage", "script")
_CSS_URL_RE = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_CSS_IMPORT_RE = re.compile(r"@import\s+(?:url\()?\s*['\"]?([^'\");\s]+)", re.IGNORECASE)


@dataclass
class PageFacts:
    """What :func:`parse_page` found in a page.

    Attributes:
        title: text of ``<title>`` (``None`` when absent).
        headings: text of each ``<h1>``.
        images: ``(src, alt)`` of each ``<img>``.
        resources: ``(element, attribute, value)`` of every reference a browser would fetch (``data:`` URIs
            included).
        links: ``href`` of each ``<a>``.
        text: the page's visible text, in order.
    """

    title: str | None = None
    headings: list[str] = field(default_factory=list)
    images: list[tuple[str, str]] = field(default_factory=list)
    resources: list[tuple[str, str, str]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.facts = PageFacts()
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "") for k, v in attrs}
        f = self.facts
        if tag == "img":
            f.images.append((a.get("src", ""), a.get("alt", "")))
        if tag == "a" and "href" in a:
            f.links.append(a["href"])
        for name in _RESOURCE_ATTRS:
            if name in a:
                values = (
                    [p.strip().split()[0] for p in a[name].split(",") if p.strip()]
                    if name == "srcset"
                    else [a[name]]
                )
                f.resources += [(tag, name, v) for v in values if not (name == "data" and tag != "object")]
        if tag in _HREF_RESOURCE_TAGS:
            for name in ("href", "xlink:href"):
                if name in a:
                    f.resources.append((tag, name, a[name]))
        if a.get("style"):
            f.resources += [(tag, "style", u) for u in _css_references(a["style"])]
        if tag in ("title", "h1", "style"):
            self._stack.append(tag)
            if tag == "title":
                f.title = ""
            elif tag == "h1":
                f.headings.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._stack and self._stack[-1] == tag:
            self._stack.pop()

    def handle_data(self, data: str) -> None:
        inside = self._stack[-1] if self._stack else None
        f = self.facts
        if inside == "style":
            f.resources += [("style", "css", u) for u in _css_references(data)]
            return
        if inside == "title":
            f.title = (f.title or "") + data
        elif inside == "h1":
            f.headings[-1] += data
        if data.strip():
            f.text.append(data.strip())


def _css_references(css: str) -> list[str]:
    refs = [m.group(2).strip() for m in _CSS_URL_RE.finditer(css)]
    refs += [m.group(1).strip() for m in _CSS_IMPORT_RE.finditer(css)]
    return [r for r in refs if r]


def parse_page(html_text: str) -> PageFacts:
    """The title, headings, images, fetched references, links and text of an HTML page."""
    parser = _Parser()
    parser.feed(html_text)
    parser.close()
    facts = parser.facts
    facts.title = None if facts.title is None else " ".join(facts.title.split())
    facts.headings = [" ".join(h.split()) for h in facts.headings]
    return facts


def decode_png_data_uri(uri: str) -> tuple[int, int]:
    """Decode a ``data:image/png;base64,...`` URI fully; returns the picture's ``(width, height)`` in pixels.

    Raises:
        ValueError: not a base64 PNG data URI, bad base64, or bytes that do not decode as a PNG image.
    """
    head, sep, payload = uri.partition(",")
    if not sep or not head.lower().startswith("data:"):
        raise ValueError("not a data: URI")
    media = head[5:].split(";")
    if media[0].strip().lower() != "image/png":
        raise ValueError(f"a data: URI of type '{media[0] or 'text/plain'}', not image/png")
    if "base64" not in [m.strip().lower() for m in media[1:]]:
        raise ValueError("a data: URI that is not base64-encoded")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 ({exc})") from exc
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("bytes without the PNG signature")
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes every pixel: a truncated or corrupt stream fails here
            if img.format != "PNG":
                raise ValueError(f"a {img.format} image, not PNG")
            return img.size
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise ValueError(f"a PNG that does not decode ({exc})") from exc


def _short(value: str, n: int = 80) -> str:
    return value if len(value) <= n else value[: n - 3] + "..."


def page_problems(html_text: str, expected_title: str | None = None) -> list[str]:
    """Every way the page fails the rules of the module docstring, in plain words (empty when it passes).

    Args:
        html_text: the page (a report file, or the DOM headless Chromium dumped).
        expected_title: the title it must have (default: any non-empty title).
    """
    facts = parse_page(html_text)
    problems: list[str] = []
    if not facts.title:
        problems.append("the page has no <title>")
    elif expected_title is not None and facts.title != " ".join(expected_title.split()):
        problems.append(f"the title is '{facts.title}', not '{expected_title}'")
    if facts.title and facts.title not in facts.headings:
        problems.append(f"no <h1> holds the title '{facts.title}'")
    for i, (src, alt) in enumerate(facts.images, start=1):
        name = f"image {i} ('{alt}')" if alt else f"image {i}"
        if not src:
            problems.append(f"{name} has no src")
            continue
        if not src.strip().lower().startswith("data:"):
            problems.append(f"{name} is not embedded: it points to '{_short(src)}'")
            continue
        try:
            decode_png_data_uri(src.strip())
        except ValueError as exc:
            problems.append(f"{name} is not an embedded PNG: {exc}")
    for tag, attribute, value in facts.resources:
        v = value.strip()
        low = v.lower()
        if low.startswith("data:") or (tag == "img" and attribute == "src"):
            continue  # embedded (images are judged above)
        if re.match(r"^(https?:|ftp:|wss?:)?//", low):
            problems.append(f"<{tag} {attribute}> loads an external resource: '{_short(v)}'")
        else:
            problems.append(f"<{tag} {attribute}> loads a file that is not embedded: '{_short(v)}'")
    return problems
