"""HTML reports: pictures embedded as data URIs (counted with html.parser), numbers, cohort summary, CLI."""

from __future__ import annotations

import base64
import csv
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from test_batch import make_phantom_cohort

import spineai
from spineai import cli
from spineai.reports import write_case_report, write_cohort_report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects the <img> sources and alt texts, the table cells, the links and the text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[tuple[str, str]] = []
        self.cells: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append((a.get("src", ""), a.get("alt", "")))
        elif tag in ("td", "th"):
            self._in_cell = True
            self.cells.append("")
        elif tag == "a":
            self.links.append(a.get("href", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_cell:
            self.cells[-1] += data


def parse(path: Path) -> _Page:
    page = _Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    return page


def embedded_pngs(page: _Page) -> list[tuple[bytes, str]]:
    """Decoded PNG data of every <img> whose source is a base64 PNG data URI."""
    out = []
    for src, alt in page.images:
        if src.startswith("data:image/png;base64,"):
            out.append((base64.b64decode(src.split(",", 1)[1]), alt))
    return out


@pytest.fixture(scope="module")
def phantom(tmp_path_factory) -> dict[str, Path]:
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    folder = tmp_path_factory.mktemp("report_phantom") / "case"
    return write_phantom_case(generate_ct_phantom(4, spacing_mm=(2.0, 2.0, 2.0), progress=False), folder)


def test_case_report_embeds_the_carm_view_3d_rendering_and_overlay_with_the_numbers(phantom, tmp_path):
    case_dir = tmp_path / "case"
    case = spineai.run_case(
        phantom["ct"], case_dir, segmentation=phantom["labels"], levels=["L5-S1"], sides=["left"], images=True
    )
    report = write_case_report(case_dir)
    assert report == case_dir / "report.html"
    page = parse(report)
    assert len(page.images) == 3 and all(src.startswith("data:image/png;base64,") for src, _ in page.images)
    pngs = embedded_pngs(page)
    assert all(data.startswith(PNG_MAGIC) for data, _ in pngs)
    assert sorted(alt for _, alt in pngs) == ["carm_L5-S1_left", "render3d", "segmentation_overlay"]
    assert (case_dir / "segmentation_overlay.png").is_file()  # drawn with matplotlib as the case had none
    # the triangle table carries the measured numbers
    rows = list(csv.DictReader((case_dir / "planning" / "measurements.tsv").open(), delimiter="\t"))
    for row in rows:
        if row["status"] == "ok":
            assert row["area_mm2"] in page.cells and row["path_length_mm"] in page.cells
    assert case.triangles is not None
    assert "Research use only" in " ".join(page.text)
    # no file outside the report is referenced: it is self-contained
    assert not [src for src, _ in page.images if not src.startswith("data:")]
    with pytest.raises(FileExistsError):
        write_case_report(case_dir)


def test_case_report_shows_gradcam_overlays_and_grades(tmp_path):
    from spineai.grading.synthetic import synthetic_sagittal_slice

    s = synthetic_sagittal_slice(5)
    img = sitk.GetImageFromArray(s.image.astype(np.float32))
    points = [list(img.TransformContinuousIndexToPhysicalPoint((float(c), float(r)))) for r, c in s.discs_rc]
    grades = spineai.grade_sagittal(
        img, tmp_path / "graded", disc_points=points, gradcam=["pfirrmann", "modic"]
    )
    page = parse(write_report(tmp_path / "graded"))
    assert sorted(alt for _, alt in embedded_pngs(page)) == ["gradcam_modic", "gradcam_pfirrmann"]
    text = " ".join(page.text)
    assert "Per-disc grades" in text
    assert [c for c in page.cells if c in ("L5-S1", "L4-L5")] and str(
        grades.discs[0].grades["pfirrmann"]
    ) in page.cells


def test_cohort_report_has_area_distributions_beside_the_paper_failures_and_case_links(tmp_path):
    manifest = make_phantom_cohort(tmp_path / "cohort", n_good=3, corrupt=True)
    out = tmp_path / "out"
    summary = spineai.run_batch(manifest, out, steps=("measure", "plan"), images=False, progress=False)
    assert summary.files["report.html"] == out / "report.html"
    page = parse(out / "report.html")
    pngs = embedded_pngs(page)
    assert len(page.images) == len(pngs) == 3  # Kambin and safe distributions, measured vs truth
    assert all(data.startswith(PNG_MAGIC) for data, _ in pngs)
    assert sorted(alt for _, alt in pngs) == ["kambin areas", "measured vs truth", "safe areas"]
    text = " ".join(page.text)
    assert "37.8 +- 20.9" in text and "8.69 +- 2.24" in text
    assert "Failures (1)" in text and "case_5" in page.cells
    assert "bias (mm2)" in page.cells  # evaluation against the truth column
    assert sorted(page.links) == [f"cases/case_{i}/report.html" for i in range(3)] + [
        "cases/case_5/report.html"
    ]
    for i in range(3):
        case_page = parse(out / "cases" / f"case_{i}" / "report.html")
        assert [alt for _, alt in embedded_pngs(case_page)] == ["segmentation_overlay"]
        assert "Kambin's and the safe triangle" in " ".join(case_page.text)
    failed = parse(out / "cases" / "case_5" / "report.html")
    assert "Failed at step measure" in " ".join(failed.text)
    # rewriting needs permission, and then replaces every report
    with pytest.raises(FileExistsError):
        write_cohort_report(out)
    write_cohort_report(out, overwrite=True)


def test_report_command(tmp_path, phantom, capsys):
    case_dir = tmp_path / "measured"
    code = cli.main(
        [
            "measure",
            str(phantom["labels"]),
            "--ct",
            str(phantom["ct"]),
            "-o",
            str(case_dir),
            "--no-images",
            "--levels",
            "L5-S1",
        ]
    )
    assert code in (0, 1)
    capsys.readouterr()
    assert cli.main(["report", str(case_dir), "-o", str(tmp_path / "r.html")]) == 0
    assert "report:" in capsys.readouterr().out
    page = parse(tmp_path / "r.html")
    assert "Kambin's and the safe triangle" in " ".join(page.text)
    assert cli.main(["report", str(case_dir), "-o", str(tmp_path / "r.html")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["report", str(case_dir), "-o", str(tmp_path / "r.html"), "--overwrite"]) == 0
    assert cli.main(["report", str(tmp_path / "nothing-here")]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_mri_cohort_on_a_real_spider_slice_reports_grades_and_gradcam(tmp_path):
    scans = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "spider_sagittal_t2" / "scans"
    if not scans.is_dir():
        pytest.skip(f"public SPIDER slices not found at {scans} (they sit beside the repository in CI)")
    folder = tmp_path / "slices"
    folder.mkdir()
    (folder / "100_t2.png").write_bytes((scans / "100_t2.png").read_bytes())
    summary = spineai.run_batch(folder, tmp_path / "out", steps=["grade-sagittal"], progress=False)
    assert (summary.done, summary.failed) == (1, 0)
    rows = list(csv.DictReader((tmp_path / "out" / "grades.tsv").open(), delimiter="\t"))
    assert rows[0]["case_id"] == "100_t2" and rows[0]["level"] == "L5-S1"
    case_page = parse(tmp_path / "out" / "cases" / "100_t2" / "report.html")
    assert [alt for _, alt in embedded_pngs(case_page)] == ["gradcam_pfirrmann"]
    assert "Pfirrmann grades per level" in " ".join(parse(tmp_path / "out" / "report.html").text)
