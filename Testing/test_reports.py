"""HTML reports: pictures embedded as data URIs (counted with html.parser), numbers, cohort summary, CLI;
level labels (banner, vertebrae, marked triangle rows, flagged cases of a cohort) and input checks built from
real ``label_levels`` and ``run_input_checks`` results on phantoms, and older cases without them."""

from __future__ import annotations

import base64
import csv
import json
import shutil
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
    assert "Failed at step levels" in " ".join(failed.text)  # the first step reading the labels
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


# ============================================================================ level labels, input checks
LEVEL_CASES = ("normal", "six_lumbar", "castellvi", "failed", "older")


def _write_tsv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, columns, delimiter="\t", extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _results_level_columns(result, level: str) -> dict[str, str]:
    """The ``results.tsv`` level columns of one triangle row, from a real LevelResult."""
    from spineai.reports.levels import vertebrae_of_level

    named = [v for v in result.vertebrae if v.name in vertebrae_of_level(level)]
    castellvi = result.transitional.get("castellvi_type")
    return {
        "level_confidence": f"{min(v.confidence for v in named):.3f}" if named else "",
        "level_trusted": "yes" if len(named) == 2 and all(v.trusted for v in named) else "no",
        "levels_flagged": "yes" if result.flagged else "no",
        "castellvi": "" if castellvi in (None, "0") else castellvi,
    }


def make_level_cohort(root: Path) -> dict:
    """A cohort folder as ``spineai batch`` writes it (cohort.json, cases.tsv, results.tsv, levels.tsv,
    cases/<id>/case.json + planning/), its level labels and input checks made with the real engine:

    - ``normal``: default phantom (L3..S1), numbered with its CT (trusted), every input check passes;
    - ``six_lumbar``: an L6 phantom with T12 in view (six lumbar vertebrae: flagged), a CT without air
      (Hounsfield warning);
    - ``castellvi``: a Castellvi IIa phantom; its numbering only in ``levels/levels.json`` (not in case.json);
    - ``failed``: the numbering failed (no sacrum, no CT: the real InputError), a field-of-view error;
    - ``older``: a case.json without ``levels`` and ``checks`` (written before they existed).
    """
    from spineai.anatomy import BY_NAME
    from spineai.checks import run_input_checks
    from spineai.errors import InputError
    from spineai.levels import label_levels
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    cases_dir = root / "cohort" / "cases"
    cases_dir.mkdir(parents=True)
    made: dict = {"root": root / "cohort", "levels": {}, "checks": {}, "results": {}}
    specs = {
        "normal": (3, {}, ["L5-S1"]),
        "six_lumbar": (6, {"variant": "L6"}, ["L6-S1"]),
        "castellvi": (5, {"variant": "castellvi_IIa"}, ["L5-S1"]),
    }
    for name, (seed, kw, levels) in specs.items():
        case = generate_ct_phantom(seed, spacing_mm=2.0, progress=False, **kw)
        files = write_phantom_case(case, root / "phantoms" / name)
        spineai.run_case(
            files["ct"], cases_dir / name, segmentation=files["labels"], steps=("measure",), levels=levels,
            sides=["left"], images=False,
        )  # fmt: skip
        result = label_levels(files["labels"], ct=files["ct"])
        ct = (
            case.image
            if name != "six_lumbar"
            else sitk.Clamp(case.image, lowerBound=-100.0, upperBound=3000.0)
        )
        checks = run_input_checks(ct=ct, labelmap=files["labels"], levels=levels)
        made["levels"][name], made["checks"][name], made["results"][name] = result, checks, files
        data = json.loads((cases_dir / name / "case.json").read_text())
        data["checks"] = [c.to_dict() for c in checks]
        if name == "castellvi":  # as 'spineai levels' writes it into the case's levels/ folder
            data.pop("levels", None)
            (cases_dir / name / "levels").mkdir(exist_ok=True)
            (cases_dir / name / "levels" / "levels.json").write_text(json.dumps(result.to_dict()))
        else:
            data["levels"] = result.to_dict()
        (cases_dir / name / "case.json").write_text(json.dumps(data))
    # a numbering that fails: no sacrum, no iliac bones and no CT (neither anchor can be seen)
    normal = made["results"]["normal"]
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(normal["labels"])))
    for structure in ("S1", "ilium_left", "ilium_right"):
        arr[arr == BY_NAME[structure].label] = 0
    no_sacrum = sitk.GetImageFromArray(arr)
    no_sacrum.CopyInformation(sitk.ReadImage(str(normal["labels"])))
    with pytest.raises(InputError) as refused:
        label_levels(no_sacrum)
    made["error"] = str(refused.value)
    for name in ("failed", "older"):
        shutil.copytree(cases_dir / "normal", cases_dir / name)
        (cases_dir / name / "segmentation_overlay.png").unlink(missing_ok=True)
        data = json.loads((cases_dir / name / "case.json").read_text())
        if name == "failed":
            data["levels"] = {"flagged": True, "error": made["error"]}
            fov = run_input_checks(labelmap=normal["labels"], levels=["L1-L2", "L5-S1"])
            data["checks"] = [c.to_dict() for c in fov]
            made["checks"][name] = fov
        else:  # written before numbering existed: no levels in case.json, no levels/ folder
            data.pop("levels", None)
            data.pop("checks", None)
            shutil.rmtree(cases_dir / name / "levels", ignore_errors=True)
        (cases_dir / name / "case.json").write_text(json.dumps(data))
    # the cohort's tables, with the level columns of results.tsv and the cohort levels.tsv
    results, level_rows, columns = [], [], ["case_id"]
    for name in LEVEL_CASES:
        rows = list(
            csv.DictReader((cases_dir / name / "planning" / "measurements.tsv").open(), delimiter="\t")
        )
        for row in rows:
            extra = {}
            if name in made["levels"]:
                extra = _results_level_columns(made["levels"][name], row["level"])
            elif name == "failed":
                extra = {"levels_flagged": "yes"}
            results.append({"case_id": name, **row, **extra})
            columns += [c for c in row if c not in columns]
        if name in made["levels"]:
            level_rows += [{"case_id": name, **r} for r in made["levels"][name].table_rows()]
    columns += ["level_confidence", "level_trusted", "levels_flagged", "castellvi"]
    out = made["root"]
    _write_tsv(out / "results.tsv", columns, results)
    _write_tsv(out / "levels.tsv", ["case_id", *made["levels"]["normal"].table_rows()[0]], level_rows)
    _write_tsv(
        out / "cases.tsv",
        ["case_id", "status", "steps_done", "foramina_measured"],
        [
            {"case_id": n, "status": "done", "steps_done": "measure", "foramina_measured": 1}
            for n in LEVEL_CASES
        ],
    )
    _write_tsv(out / "failures.tsv", ["case_id", "status"], [])
    (out / "cohort.json").write_text(
        json.dumps({"case_ids": list(LEVEL_CASES), "steps": ["measure"], "source": {"kind": "manifest"}})
    )
    made["report"] = write_cohort_report(out)
    return made


@pytest.fixture(scope="module")
def level_cohort(tmp_path_factory) -> dict:
    return make_level_cohort(tmp_path_factory.mktemp("level_cohort"))


class _Rows(HTMLParser):
    """Each table row as (tr class, [cell texts]), in order, and the text of every element with a class."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[str, list[str]]] = []
        self.classed: dict[str, list[str]] = {}
        self._cell: int | None = None
        self._open: list[str | None] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self.rows.append((a.get("class") or "", []))
        elif tag in ("td", "th") and self.rows:
            self.rows[-1][1].append("")
            self._cell = len(self.rows) - 1
        if tag in ("div", "p", "td", "h2", "tr", "ul", "li", "span"):
            self._open.append(a.get("class"))
            for cls in (a.get("class") or "").split():
                self.classed.setdefault(cls, []).append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell = None
        if tag in ("div", "p", "td", "h2", "tr", "ul", "li", "span") and self._open:
            self._open.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self.rows[self._cell][1][-1] += data
        for cls in {c for o in self._open if o for c in o.split()}:
            self.classed[cls][-1] += data


def rows_of(path: Path) -> _Rows:
    r = _Rows()
    r.feed(Path(path).read_text(encoding="utf-8"))
    return r


def _row(rows: _Rows, first_cell: str) -> tuple[str, list[str]]:
    found = [r for r in rows.rows if r[1] and r[1][0] == first_cell]
    assert found, f"no row starting with {first_cell!r}"
    return found[0]


def test_flagged_case_report_opens_with_the_banner_and_marks_its_levels(level_cohort):
    from spineai.reports.levels import LEVELS_BANNER

    folder = level_cohort["root"] / "cases" / "six_lumbar"
    result = level_cohort["levels"]["six_lumbar"]
    assert result.flagged and result.transitional["kind"] == "six_lumbar_vertebrae"
    path = folder / "report.html"
    text = path.read_text(encoding="utf-8")
    page, rows = parse(path), rows_of(path)
    # the banner comes before every section, with the reason
    banner = " ".join(rows.classed["banner"])
    assert LEVELS_BANNER in banner and "six lumbar vertebrae (L6)" in banner
    assert text.index('class="banner"') < text.index("<h2>Level labels</h2>") < text.index("<h2>Kambin")
    # every vertebra with its confidence and trusted flag; the transitional one is marked
    for v in result.vertebrae:
        cls, cells = _row(rows, v.name)
        assert cells[2] == f"{v.confidence:.2f}" and cells[3] == ("yes" if v.trusted else "no")
        assert (cls == "flagged") == ("transitional" in v.flags or not v.trusted)
    assert (
        "Numbered from the sacrum and the last rib-bearing vertebra (T12). 6 lumbar vertebrae."
        in " ".join(page.text)
    )
    assert "left 0, right 0" in page.cells  # Castellvi per side of the transitional L6
    # the triangle rows at L6-S1 carry the mark and the row class
    triangle_rows = [r for r in rows.rows if r[1] and r[1][0] == "L6-S1"]
    assert len(triangle_rows) == 2 and all(
        cls == "flagged" and cells[1].startswith("⚠ check: L6 transitional") for cls, cells in triangle_rows
    )
    # the Hounsfield warning of the air-less CT, with the checks that passed
    cls, cells = _row(rows, "hounsfield")
    assert cells[1] == "warning" and "no air" in cells[2]
    assert "Passed: orientation, field_of_view." in " ".join(page.text)


def test_trusted_case_has_no_banner_and_no_marks(level_cohort):
    path = level_cohort["root"] / "cases" / "normal" / "report.html"
    rows, page = rows_of(path), parse(path)
    assert "banner" not in rows.classed and "⚠" not in " ".join(page.text)
    assert [cls for cls, cells in rows.rows if cells and cells[0] == "L5-S1"] == ["", ""]
    assert "Numbered from the sacrum (counted upward from it)." in " ".join(page.text)
    assert "Every input check passed." in " ".join(page.text)
    assert "Lumbosacral junction at L5: normal (Castellvi left 0, right 0)." in " ".join(page.text)


def test_failed_numbering_and_input_check_errors_are_shown_with_their_fix(level_cohort):
    path = level_cohort["root"] / "cases" / "failed" / "report.html"
    rows, page = rows_of(path), parse(path)
    text = " ".join(page.text)
    assert f"The level numbering failed: {level_cohort['error']}" in text
    assert "Check the level labels before acting" in " ".join(rows.classed["banner"])
    assert all(
        cls == "flagged" and cells[1] == "⚠ check: level numbering failed"
        for cls, cells in rows.rows
        if cells and cells[0] == "L5-S1"
    )
    fov = next(c for c in level_cohort["checks"]["failed"] if c.name == "field_of_view")
    assert fov.status == "error"
    cls, cells = _row(rows, "field_of_view")
    assert cls == "flagged" and cells[1:] == ["error", fov.message, fov.fix]
    assert "1 input check(s) failed" in " ".join(rows.classed["caution"])


def test_levels_json_of_the_case_folder_is_read_when_case_json_has_none(level_cohort):
    path = level_cohort["root"] / "cases" / "castellvi" / "report.html"
    rows, page = rows_of(path), parse(path)
    result = level_cohort["levels"]["castellvi"]
    assert result.transitional["castellvi_type"] == "IIa" and result.get("L5").trusted
    assert "Castellvi type IIa (left II, right 0)" in " ".join(rows.classed["banner"])
    cls, cells = _row(rows, "L5")
    assert cls == "flagged" and "left II, right 0" in cells and cells[-1] == "⚠ L5 transitional"
    assert all(
        cells[1] == "⚠ check: L5 transitional; Castellvi IIa"
        for _c, cells in rows.rows
        if cells[:1] == ["L5-S1"]
    )
    assert "Level labels" in " ".join(page.text)


def test_older_case_without_levels_or_checks_reports_as_before(level_cohort):
    path = level_cohort["root"] / "cases" / "older" / "report.html"
    page, rows = parse(path), rows_of(path)
    text = " ".join(page.text)
    assert "Level labels" not in text and "Input checks" not in text and "banner" not in rows.classed
    assert "level labels" not in page.cells and "Kambin's and the safe triangle" in text


def test_cohort_report_lists_flagged_cases_counts_checks_and_annotates_levels(level_cohort):
    path = level_cohort["report"]
    page, rows = parse(path), rows_of(path)
    text = " ".join("".join(page.text).split())
    assert (
        "3 of 4 case(s) with a level numbering have flagged level labels (1 case(s) have none recorded)."
        in text
    )
    assert "Check the level labels before acting" in " ".join(rows.classed["banner"])
    # the flagged cases, linked to their reports, with their transitional type
    assert {"cases/six_lumbar/report.html", "cases/castellvi/report.html", "cases/failed/report.html"} <= set(
        page.links
    )
    flagged_table = [
        cells for _c, cells in rows.rows if cells and cells[0] in ("six_lumbar", "castellvi", "failed")
    ]
    assert any("six lumbar vertebrae (L6) at L6" in " ".join(c) for c in flagged_table)
    assert any("IIa" in c for c in flagged_table)
    assert any(level_cohort["error"][:40] in " ".join(c) for c in flagged_table)
    assert not any(cells[:1] == ["normal"] and "⚠" in " ".join(cells) for _c, cells in rows.rows)
    # why they are flagged, counted
    for reason in (
        "numbering failed",
        "six lumbar vertebrae (L6)",
        "Castellvi type IIa",
    ):
        assert _row(rows, reason)[1][1] == "1"
    # input checks counted per check, and listed with their fix
    assert _row(rows, "hounsfield")[1][1:] == ["2", "1", "0"]  # the failed case was checked without a CT
    assert _row(rows, "field_of_view")[1][1:] == ["3", "0", "1"]
    assert _row(rows, "orientation")[1][1:] == ["4", "0", "0"]
    assert "1 warning(s) and 1 error(s) in 2 case(s)" in text
    # per-level table: L5-S1 left has 4 measured cases, 2 of them (castellvi, failed) with flagged levels
    summary = [cells for _c, cells in rows.rows if len(cells) > 3 and cells[1] == "L5-S1 left"]
    assert summary and all(cells[2] == "⚠ 2/4 flagged" for cells in summary)
    six = [cells for cls, cells in rows.rows if len(cells) > 3 and cells[1] == "L6-S1 left"]
    assert six and all(cells[2] == "⚠ 1/1 flagged" for cells in six)
    assert any("red crosses" in (alt_caption or "") for alt_caption in page.text)
    # the cases table: level labels and input checks per case
    assert _row(rows, "normal")[1][2:5] == ["ok", "0", "ok"]


def test_cohort_levels_from_levels_tsv_and_results_columns_alone(level_cohort, tmp_path):
    from spineai.reports.cohort import cohort_level_labels

    result = level_cohort["levels"]["castellvi"]
    _write_tsv(
        tmp_path / "levels.tsv",
        ["case_id", *result.table_rows()[0]],
        [{"case_id": "c1", **r} for r in result.table_rows()],
    )
    results = [
        {"case_id": "c1", "level": "L5-S1", **_results_level_columns(result, "L5-S1")},
        {"case_id": "c2", "level": "L5-S1", "levels_flagged": "yes", "castellvi": ""},
        {"case_id": "c3", "level": "L5-S1"},
    ]
    levels, checks = cohort_level_labels(tmp_path, ["c1", "c2", "c3"], results)
    assert set(levels) == {"c1", "c2"} and checks == {}
    c1 = levels["c1"]
    assert c1.flagged and c1.names == result.names and c1.castellvi_type == "IIa"
    assert c1.castellvi == {"left": "II", "right": "0"} and c1.transitional_vertebra == "L5"
    assert c1.concern("L5-S1") == "L5 transitional; Castellvi IIa" and c1.concern("L3-L4") == ""
    assert levels["c2"].flagged and not levels["c2"].vertebrae


def test_level_labels_survive_missing_and_malformed_keys(level_cohort):
    from spineai.reports.levels import read_checks, read_levels

    assert read_levels(None) is None and read_levels({}) is None and read_levels("x") is None
    odd = read_levels({"vertebrae": [None, {"confidence": 0.5}, {"name": "L5", "confidence": "n/a"}],
                       "transitional": 3, "anchor": "sacrum", "warnings": "one sentence"})  # fmt: skip
    assert odd is not None and odd.names == ["L5"] and odd.warnings == ("one sentence",)
    assert not odd.flagged and odd.concern("L5-S1") == "S1 is not in the numbering"
    six = read_levels(level_cohort["levels"]["six_lumbar"].to_dict())
    assert six.concern("L5-S1") == "L5 and S1 are not neighbours in the numbering"  # named before renumbering
    assert six.concern("L4-L5") == "" and six.concern("L6-S1") == "L6 transitional"
    failed = read_levels({"flagged": True, "error": "no anchor"})
    assert failed.flagged and failed.concern("L4-L5") == "level numbering failed"
    assert read_checks(None) == [] and read_checks([None, {"status": "error"}, "x"]) == []
    (check,) = read_checks([{"name": "hounsfield", "status": "WARNING", "message": "m", "fix": None}])
    assert check.problem and check.status == "warning" and check.fix is None
