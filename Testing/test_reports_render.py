"""Reports render self-contained: the page checks of ``spineai.reports.check`` on generated case and cohort
reports (and on pages broken on purpose), and ``benchmarks/check_report_render.py`` in headless Chromium,
skipped where no Chromium binary is installed (CI machines lack it)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_reports import make_level_cohort

from spineai.reports.check import decode_png_data_uri, page_problems, parse_page

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "check_report_render.py"
sys.path.insert(0, str(REPO / "benchmarks"))

import check_report_render  # noqa: E402

CHROMIUM = check_report_render.find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary (chromium, chromium-browser, google-chrome ... or $CHROMIUM) on this machine; "
    "install it (Debian: apt-get install chromium) to run the headless render check",
)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    made = make_level_cohort(tmp_path_factory.mktemp("render"))
    cases = made["root"] / "cases"
    return {
        "cohort": made["report"],
        "flagged": cases / "six_lumbar" / "report.html",
        "failed": cases / "failed" / "report.html",
        "normal": cases / "normal" / "report.html",
    }


def _run_script(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )


# ================================================================================ without Chromium
def test_generated_reports_pass_the_page_checks(reports):
    for name, path in reports.items():
        text = path.read_text(encoding="utf-8")
        assert page_problems(text) == [], name
        facts = parse_page(text)
        assert facts.title in facts.headings
        assert facts.images, f"{name} report has no picture"
        for src, _alt in facts.images:
            width, height = decode_png_data_uri(src)
            assert width > 50 and height > 50
    assert parse_page(reports["cohort"].read_text(encoding="utf-8")).title == "SpineAI cohort report"
    assert parse_page(reports["flagged"].read_text(encoding="utf-8")).title == "SpineAI case six_lumbar"


def _first_png(text: str) -> str:
    match = re.search(r'src="(data:image/png;base64,[^"]+)"', text)
    assert match, "the report has no embedded PNG"
    return match.group(1)


def _truncated(uri: str) -> str:
    """The data URI with its PNG cut in half (still valid base64)."""
    head, payload = uri.split(",", 1)
    data = base64.b64decode(payload)
    return head + "," + base64.b64encode(data[: len(data) // 2]).decode()


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda t, uri: t.replace(uri, "http://example.invalid/carm.png", 1), "not embedded: it points to 'http://"),
        (lambda t, uri: t.replace(uri, "carm_L5-S1_left.png", 1), "not embedded: it points to 'carm_L5-S1_left.png'"),
        (lambda t, uri: t.replace(uri, uri.replace("image/png", "image/jpeg"), 1), "not image/png"),
        (lambda t, uri: t.replace(uri, _truncated(uri), 1), "does not decode"),
        (lambda t, uri: t.replace(uri, "data:image/png;base64,@@notbase64@@", 1), "invalid base64"),
        (
            lambda t, uri: t.replace(uri, "data:image/png;base64," + base64.b64encode(b"GIF89a" * 9).decode(), 1),
            "without the PNG signature",
        ),
        (
            lambda t, uri: t.replace("</title>", '</title><link rel="stylesheet" href="https://cdn.example.invalid/r.css">'),
            "<link href> loads an external resource: 'https://cdn.example.invalid/r.css'",
        ),
        (
            lambda t, uri: t.replace("<h2>", '<h2 style="background:url(//cdn.example.invalid/b.png)">', 1),
            "<h2 style> loads an external resource",
        ),
        (
            lambda t, uri: t.replace("<style>", '<style>@import url("https://fonts.example.invalid/f.css");', 1),
            "<style css> loads an external resource: 'https://fonts.example.invalid/f.css'",
        ),
        (lambda t, uri: t.replace("</body>", '<script src="app.js"></script></body>'), "not embedded: 'app.js'"),
        (lambda t, uri: re.sub(r"<title>.*?</title>", "", t, count=1), "the page has no <title>"),
        (lambda t, uri: t.replace("<h1>", "<h1>Other ", 1), "no <h1> holds the title"),
    ],
)  # fmt: skip
def test_page_checks_name_what_breaks_a_self_contained_page(reports, break_it, expected):
    text = reports["flagged"].read_text(encoding="utf-8")
    broken = break_it(text, _first_png(text))
    assert broken != text
    problems = page_problems(broken)
    assert any(expected in p for p in problems), problems


def test_links_between_reports_and_to_web_pages_are_not_resources(reports):
    text = reports["cohort"].read_text(encoding="utf-8")
    assert 'href="cases/six_lumbar/report.html"' in text
    linked = text.replace("</h1>", '</h1><a href="https://doi.org/10.3174/ajnr.A5962">Fan et al. 2019</a>', 1)
    assert page_problems(linked) == []
    assert page_problems(text, expected_title="SpineAI case x") == [
        "the title is 'SpineAI cohort report', not 'SpineAI case x'"
    ]


def test_render_script_without_chromium_says_so(tmp_path, reports):
    env = {k: v for k, v in os.environ.items() if k != "CHROMIUM"}
    env["PATH"] = str(tmp_path)  # an empty folder: no browser on the PATH
    result = _run_script(str(reports["normal"]), "-o", str(tmp_path / "shots"), env=env)
    assert result.returncode == 2
    assert "no Chromium binary found" in result.stderr and "apt-get install chromium" in result.stderr
    assert not (tmp_path / "shots").exists()


# =================================================================================== with Chromium
@needs_chromium
def test_chromium_renders_the_case_and_cohort_reports(reports, tmp_path):
    from PIL import Image

    out = tmp_path / "shots"
    pages = [reports["flagged"], reports["cohort"]]
    result = _run_script(*map(str, pages), "-o", str(out), "--window-size", "1280,1600")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 of 2 page(s) passed" in result.stdout
    assert "'SpineAI case six_lumbar', 1 embedded picture(s)" in result.stdout
    assert "'SpineAI cohort report', 2 embedded picture(s)" in result.stdout
    for name in ("six_lumbar_report.png", "cohort_report.png"):
        with Image.open(out / name) as img:
            assert img.format == "PNG" and img.size == (1280, 1600)
            colours = img.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 50  # text, tables, the red banner: not a blank page
    # the flagged case's red banner is in the rendered top of the page
    with Image.open(out / "six_lumbar_report.png") as img:
        top = np.asarray(img.convert("RGB").crop((0, 0, 1280, 400))).astype(int)
        reds = int(((top[..., 0] > 150) & (top[..., 1] < 60) & (top[..., 2] < 60)).sum())
        assert reds > 200, "the red banner is not rendered at the top of the flagged case"
    # screenshots are not replaced without --overwrite
    again = _run_script(str(reports["flagged"]), "-o", str(out))
    assert again.returncode == 2 and "exists" in again.stderr


@needs_chromium
def test_chromium_check_fails_naming_the_external_request(reports, tmp_path):
    text = reports["normal"].read_text(encoding="utf-8")
    bad = tmp_path / "report.html"
    bad.write_text(text.replace(_first_png(text), "http://example.invalid/overlay.png", 1), encoding="utf-8")
    result = _run_script(str(bad), str(reports["normal"]), "-o", str(tmp_path / "shots"))
    assert result.returncode == 1
    assert "1 of 2 page(s) passed" in result.stdout
    assert f"FAIL {bad}" in result.stderr
    assert (
        "DOM: image 1 ('segmentation_overlay') is not embedded: it points to 'http://example.invalid"
        in result.stderr
    )
    # the request itself reached the recording proxy: Chromium really tried to load it
    assert "network: the page requested 'GET http://example.invalid/overlay.png'" in result.stderr
