"""Open SpineAI HTML reports in headless Chromium and check that they render self-contained.

For each REPORT.html:

1. the file itself passes :func:`spineai.reports.check.page_problems` (a title, every ``<img>`` an embedded
   PNG data URI that decodes, nothing loaded from a URL or a separate file);
2. ``chromium --headless --disable-gpu --no-sandbox --dump-dom`` loads it: the DOM Chromium built has the
   report's title (and the ``<h1>``), the footer (the page was parsed to its end), and passes the same
   checks; Chromium runs behind a local proxy that records every network request, and any request the page
   makes (anything but Chromium's own update and account services) is a problem;
3. ``chromium --screenshot`` writes ``OUT/<name>.png`` (window ``--window-size``, default 1280 x 2400),
   which must decode as a PNG of that size and not be blank.

Exit status: 0 when every page passes, 1 when one does not (each problem is named on stderr), 2 when no
Chromium binary is found (``--chromium``, ``$CHROMIUM``, or ``chromium``, ``chromium-browser``,
``google-chrome`` ... on the PATH) or the arguments are wrong.

Example::

    python benchmarks/check_report_render.py cohort-out/report.html cohort-out/cases/*/report.html \\
        --out report-screenshots
"""

from __future__ import annotations

import argparse
import http.server
import io
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from spineai.reports.check import page_problems, parse_page

#: names of a Chromium (or Chrome) binary, in the order they are looked for on the PATH
CHROMIUM_NAMES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "chrome-headless-shell",
    "headless_shell",
)
#: hosts of Chromium's own background services (component updates, clock, sign-in), not the page's
BROWSER_SERVICE_HOSTS = (
    "update.googleapis.com",
    "clients1.google.com",
    "clients2.google.com",
    "clients3.google.com",
    "clients4.google.com",
    "clientservices.googleapis.com",
    "accounts.google.com",
    "safebrowsing.googleapis.com",
    "optimizationguide-pa.googleapis.com",
    "content-autofill.googleapis.com",
    "redirector.gvt1.com",
    "edgedl.me.gvt1.com",
    "dl.google.com",
)
#: text every SpineAI report ends with (its footer)
FOOTER_TEXT = "Research use only; not for clinical decisions."
DEFAULT_WINDOW = (1280, 2400)
#: flags of every Chromium run: headless, no GPU, no sandbox (containers, root), a fresh profile, and as
#: little background traffic as possible
BASE_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
    "--password-store=basic",
)


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium binary: ``explicit``, else ``$CHROMIUM``, else the first of :data:`CHROMIUM_NAMES` on
    the PATH (``None`` when there is none)."""
    for candidate in (explicit, os.environ.get("CHROMIUM")):
        if candidate:
            found = shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
            if found:
                return found
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


# ================================================================================ request recorder
class _Recorder(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.requests: list[str] = []
        self.lock = threading.Lock()


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    """Answers every proxied request with 403 after writing down its method and target."""

    def _refuse(self) -> None:
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.requests.append(f"{self.command} {self.path}")  # type: ignore[attr-defined]
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = do_CONNECT = _refuse

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        return


def _host(request: str) -> str:
    """The host of a recorded request line (``"CONNECT a.b:443"`` or ``"GET http://a.b/x"``)."""
    target = request.split(" ", 1)[-1]
    if "://" in target:
        target = target.split("://", 1)[1]
    return target.split("/", 1)[0].rsplit(":", 1)[0].lower()


def page_requests(requests: Sequence[str]) -> list[str]:
    """The recorded requests that are not Chromium's own background services."""
    return [r for r in requests if _host(r) not in BROWSER_SERVICE_HOSTS]


# ======================================================================================== rendering
@dataclass
class RenderResult:
    """What the checks found for one page.

    Attributes:
        page: the report file.
        title: its title.
        images: number of ``<img>`` in the DOM Chromium built.
        screenshot: the screenshot written (``None`` when it could not be).
        requests: network requests the page made (Chromium's own services left out).
        problems: every failed check, in plain words (empty: the page passed).
    """

    page: Path
    title: str | None = None
    images: int = 0
    screenshot: Path | None = None
    requests: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _run_chromium(
    chromium: str, proxy_port: int, args: Sequence[str], timeout_s: float
) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="spineai-chromium-") as profile:
        argv = [
            chromium,
            *BASE_FLAGS,
            f"--user-data-dir={profile}",
            f"--proxy-server=http://127.0.0.1:{proxy_port}",
            *args,
        ]
        return subprocess.run(argv, capture_output=True, text=False, timeout=timeout_s, check=False)


def _screenshot_problems(path: Path, window: tuple[int, int]) -> list[str]:
    from PIL import Image

    if not path.is_file() or path.stat().st_size == 0:
        return [f"Chromium wrote no screenshot at {path}"]
    try:
        with Image.open(path) as img:
            img.load()
            size, fmt = img.size, img.format
            colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
    except (OSError, SyntaxError) as exc:
        return [f"the screenshot {path} does not decode as a PNG ({exc})"]
    problems = []
    if fmt != "PNG":
        problems.append(f"the screenshot {path} is a {fmt}, not a PNG")
    if size != tuple(window):
        problems.append(f"the screenshot is {size[0]} x {size[1]} pixels, not {window[0]} x {window[1]}")
    if colours is not None and len(colours) < 8:
        problems.append(f"the screenshot is blank ({len(colours)} colour(s)): the page did not render")
    return problems


def check_page(
    page: Path,
    screenshot: Path,
    chromium: str,
    recorder: _Recorder,
    window: tuple[int, int] = DEFAULT_WINDOW,
    timeout_s: float = 120.0,
) -> RenderResult:
    """Run the checks of the module docstring on one report; the screenshot goes to ``screenshot``."""
    page = Path(page).resolve()
    result = RenderResult(page=page)
    if not page.is_file():
        result.problems.append(f"{page} does not exist")
        return result
    source = page.read_text(encoding="utf-8", errors="replace")
    title = parse_page(source).title
    result.title = title
    result.problems += [f"file: {p}" for p in page_problems(source)]
    url = page.as_uri()

    with recorder.lock:
        recorder.requests.clear()
    try:
        dumped = _run_chromium(chromium, recorder.server_address[1], ["--dump-dom", url], timeout_s)
    except subprocess.TimeoutExpired:
        result.problems.append(f"Chromium did not finish loading the page within {timeout_s:.0f} s")
        return result
    dom = dumped.stdout.decode("utf-8", errors="replace")
    if dumped.returncode != 0 or not dom.strip():
        tail = dumped.stderr.decode("utf-8", errors="replace").strip().splitlines()[-3:]
        result.problems.append(
            f"Chromium could not load the page (exit {dumped.returncode}): {' | '.join(tail)}"
        )
        return result
    facts = parse_page(dom)
    result.images = len(facts.images)
    result.problems += [f"DOM: {p}" for p in page_problems(dom, expected_title=title)]
    if FOOTER_TEXT not in " ".join(facts.text):
        result.problems.append(
            f"DOM: the footer ('{FOOTER_TEXT}') is missing: the page did not load to its end"
        )

    screenshot.parent.mkdir(parents=True, exist_ok=True)
    partial = screenshot.with_name(f".{screenshot.stem}.partial.png")
    partial.unlink(missing_ok=True)
    try:
        shot = _run_chromium(
            chromium,
            recorder.server_address[1],
            [f"--window-size={window[0]},{window[1]}", f"--screenshot={partial}", url],
            timeout_s,
        )
    except subprocess.TimeoutExpired:
        result.problems.append(f"Chromium did not finish the screenshot within {timeout_s:.0f} s")
        partial.unlink(missing_ok=True)
        return result
    problems = _screenshot_problems(partial, window)
    if shot.returncode != 0:
        problems.insert(0, f"Chromium's screenshot run failed (exit {shot.returncode})")
    if partial.is_file():
        os.replace(partial, screenshot)  # atomic: a screenshot is either whole or absent
        result.screenshot = screenshot
    result.problems += problems
    with recorder.lock:
        result.requests = list(dict.fromkeys(page_requests(recorder.requests)))
    result.problems += [f"network: the page requested '{r}'" for r in result.requests]
    return result


def _screenshot_names(pages: Sequence[Path]) -> list[str]:
    """One file name per page: ``<folder>_<stem>.png`` (``report.html`` files share their stem)."""
    names, seen = [], set()
    for p in pages:
        base = f"{p.resolve().parent.name}_{p.stem}" if p.stem == "report" else p.stem
        name, k = f"{base}.png", 2
        while name in seen:
            name, k = f"{base}_{k}.png", k + 1
        seen.add(name)
        names.append(name)
    return names


def check_pages(
    pages: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    chromium: str,
    window: tuple[int, int] = DEFAULT_WINDOW,
    overwrite: bool = False,
    timeout_s: float = 120.0,
) -> list[RenderResult]:
    """:func:`check_page` of every page, screenshots into ``out_dir``.

    Raises:
        FileExistsError: a screenshot exists and ``overwrite`` is False (checked before anything runs).
    """
    paths = [Path(p) for p in pages]
    out = Path(out_dir)
    targets = [out / n for n in _screenshot_names(paths)]
    existing = [t for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists: choose another --out folder or pass --overwrite")
    recorder = _Recorder()
    thread = threading.Thread(target=recorder.serve_forever, daemon=True)
    thread.start()
    try:
        return [
            check_page(p, t, chromium, recorder, window, timeout_s)
            for p, t in zip(paths, targets, strict=True)
        ]
    finally:
        recorder.shutdown()
        recorder.server_close()


def _window(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("x", ",").split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not WIDTH,HEIGHT in pixels, e.g. 1280,2400") from exc
    if not (200 <= w <= 8000 and 200 <= h <= 30000):
        raise argparse.ArgumentTypeError(f"window {w} x {h} is outside 200..8000 x 200..30000 pixels")
    return w, h


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="check_report_render.py",
        description=(
            "Open SpineAI HTML reports in headless Chromium: check the page loads with its title, every\n"
            "picture is an embedded PNG that decodes, nothing is requested from the network or from other\n"
            "files, and write a screenshot of each. Exit 0: every page passed; 1: a page failed (the\n"
            "problems are named); 2: no Chromium found."
        ),
        epilog=(
            "example:\n  python benchmarks/check_report_render.py cohort-out/report.html "
            "cohort-out/cases/*/report.html --out report-screenshots"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("reports", nargs="+", type=Path, help="report HTML files")
    parser.add_argument(
        "-o", "--out", type=Path, default=Path("report-screenshots"), help="folder of the screenshots"
    )
    parser.add_argument(
        "--chromium", default=None, help="Chromium/Chrome binary (default: found on the PATH)"
    )
    parser.add_argument(
        "--window-size", type=_window, default=DEFAULT_WINDOW, help="screenshot size WIDTH,HEIGHT (pixels)"
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds allowed per Chromium run")
    parser.add_argument("--overwrite", action="store_true", help="replace existing screenshots")
    args = parser.parse_args(argv)

    chromium = find_chromium(args.chromium)
    if chromium is None:
        print(
            "check_report_render: error: no Chromium binary found (looked for "
            f"{', '.join(CHROMIUM_NAMES)} on the PATH and $CHROMIUM). Fix: install it "
            "(Debian: apt-get install chromium) or pass --chromium PATH.",
            file=sys.stderr,
        )
        return 2
    try:
        results = check_pages(
            args.reports,
            args.out,
            chromium,
            args.window_size,
            overwrite=args.overwrite,
            timeout_s=args.timeout,
        )
    except FileExistsError as exc:
        print(f"check_report_render: error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for r in results:
        if r.ok:
            print(f"OK   {r.page}: '{r.title}', {r.images} embedded picture(s), screenshot {r.screenshot}")
        else:
            failed += 1
            buffer = io.StringIO()
            print(f"FAIL {r.page}:", file=buffer)
            for p in r.problems:
                print(f"     - {p}", file=buffer)
            print(buffer.getvalue(), end="", file=sys.stderr)
    print(f"{len(results) - failed} of {len(results)} page(s) passed (Chromium: {chromium})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
