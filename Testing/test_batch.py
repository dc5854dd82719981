"""Cohort runs (``spineai batch``): manifest and folder input, failures, resume, local process pool, CLI.

The cohort: five coarse phantom CTs whose exact label maps are given in the manifest's ``segmentation``
column (so no CT weights are needed) and one case whose CT file is corrupt.
"""

from __future__ import annotations

import csv
import json
import os
from functools import partial
from pathlib import Path

import pytest

from spineai import api, cli
from spineai.batch import find_cases, read_cohort, read_record, run_batch
from spineai.batch.worker import CaseContext
from spineai.errors import InputError

PHANTOM_SPACING_MM = (2.0, 2.0, 2.0)
GOOD_CASES = 5
CORRUPT_CASE = "case_5"
FAST = {"steps": ("measure", "plan"), "images": False, "report": False, "progress": False}


def make_phantom_cohort(root: Path, n_good: int = GOOD_CASES, corrupt: bool = True) -> Path:
    """Phantom cases ``case_<i>/`` (ct, labels, truth) and ``manifest.csv``; the last case's CT is corrupt."""
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    rows = ["case_id,image,segmentation,truth,site"]
    for i in range(n_good):
        write_phantom_case(
            generate_ct_phantom(20 + i, spacing_mm=PHANTOM_SPACING_MM, progress=False), root / f"case_{i}"
        )
        rows.append(f"case_{i},case_{i}/ct.nii.gz,case_{i}/labels.nii.gz,case_{i}/truth.json,site{i % 2}")
    if corrupt:
        bad = root / CORRUPT_CASE
        bad.mkdir()
        (bad / "ct.nii.gz").write_bytes(b"\x1f\x8b not really a gzip-compressed NIfTI " * 40)
        rows.append(f"{CORRUPT_CASE},{CORRUPT_CASE}/ct.nii.gz,case_0/labels.nii.gz,,site1")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def read_rows(path: Path, delimiter: str = "\t") -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def first_cases(manifest: Path, target: Path, n: int) -> Path:
    """A manifest of the first ``n`` rows of ``manifest`` (paths made absolute) at ``target``."""
    rows = read_rows(manifest, ",")[:n]
    columns = list(rows[0])
    lines = [",".join(columns)]
    for r in rows:
        paths = ("image", "segmentation", "truth")
        lines.append(",".join(str(manifest.parent / r[c]) if c in paths and r[c] else r[c] for c in columns))
    target.write_text("\n".join(lines) + "\n")
    return target


def kill_worker_once(marker_dir: str, case_id: str, context: CaseContext) -> dict:
    """A custom step that kills its own worker process the first time it sees ``case_id``."""
    marker = Path(marker_dir) / f"killed-{context.case.case_id}"
    if context.case.case_id == case_id and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(17)
    return {"pid": os.getpid()}


def interrupt_once(marker_dir: str, case_id: str, context: CaseContext) -> None:
    """A custom step that behaves like Ctrl-C the first time it sees ``case_id``."""
    marker = Path(marker_dir) / f"interrupted-{context.case.case_id}"
    if context.case.case_id == case_id and not marker.exists():
        marker.write_text("x")
        raise KeyboardInterrupt


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    return make_phantom_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.fixture(scope="module")
def serial_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "out"
    return out, run_batch(cohort, out, **FAST)


# -------------------------------------------------------------------------------------------- runs
def test_one_corrupt_case_fails_alone_and_the_tables_hold_the_rest(serial_run, cohort):
    out, summary = serial_run
    assert (summary.cases, summary.done, summary.failed, summary.ran, summary.skipped) == (6, 5, 1, 6, 0)
    failures = read_rows(out / "failures.tsv")
    assert [f["case_id"] for f in failures] == [CORRUPT_CASE]
    assert failures[0]["error_type"] == "InputError" and "corrupt" in failures[0]["error"]
    assert failures[0]["step"] == "levels" and failures[0]["site"] == "site1"  # the first step reading it
    bad = read_record(out / "cases" / CORRUPT_CASE)
    assert bad["status"] == "failed" and bad["steps_done"] == [] and bad["error"]["type"] == "InputError"

    rows = read_rows(out / "results.tsv")
    assert len(rows) == GOOD_CASES * 8  # 2 levels x 2 sides x 2 triangles per case
    assert {r["case_id"] for r in rows} == {f"case_{i}" for i in range(GOOD_CASES)}
    # measuring numbers the levels first: every triangle row carries its level's confidence, normal phantoms
    # are trusted and not flagged
    assert all(0.0 < float(r["level_confidence"]) <= 1.0 for r in rows)
    assert {(r["level_trusted"], r["levels_flagged"], r["castellvi"]) for r in rows} == {("yes", "no", "")}
    assert (out / "levels.tsv").is_file()
    assert rows[0]["site"] == "site0" and "truth_area_mm2" in rows[0]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= GOOD_CASES * 4
    for r in ok:  # the truth comparison is measured - truth
        assert float(r["area_error_mm2"]) == pytest.approx(
            float(r["area_mm2"]) - float(r["truth_area_mm2"]), abs=2e-4
        )
        assert r["best_oblique_deg"] != "" and r["path_length_mm"] != ""
    assert read_rows(out / "results.csv", ",") == rows
    cases = {c["case_id"]: c for c in read_rows(out / "cases.tsv")}
    assert cases["case_0"]["status"] == "done" and cases["case_0"]["steps_done"] == "levels,measure,plan"
    assert cases[CORRUPT_CASE]["status"] == "failed"

    # the batch's numbers are those of the API on the same inputs
    direct = api.plan_injection(
        cohort.parent / "case_1" / "labels.nii.gz", cohort.parent / "case_1" / "ct.nii.gz"
    )
    batch = {
        (r["level"], r["side"], r["triangle"]): float(r["area_mm2"]) for r in ok if r["case_id"] == "case_1"
    }
    assert batch == pytest.approx({k: round(v, 4) for k, v in direct.areas_mm2().items()}, abs=1e-4)

    identity = json.loads((out / "cohort.json").read_text())
    assert identity["steps"] == ["levels", "measure", "plan"] and len(identity["inputs_hash"]) == 64
    assert identity["case_ids"][-1] == CORRUPT_CASE and identity["runs"][-1]["status"] == "finished"


def test_rerun_skips_finished_cases_and_retries_the_failed_one(serial_run, cohort):
    out, _ = serial_run
    before = {f"case_{i}": read_record(out / "cases" / f"case_{i}") for i in range(GOOD_CASES)}
    results_before = (out / "results.tsv").read_text()
    summary = run_batch(cohort, out, **FAST)
    assert (summary.skipped, summary.ran, summary.done, summary.failed) == (GOOD_CASES, 1, 5, 1)
    for cid, rec in before.items():
        after = read_record(out / "cases" / cid)
        assert (after["started"], after["finished"], after["attempts"]) == (
            rec["started"],
            rec["finished"],
            1,
        )
    assert read_record(out / "cases" / CORRUPT_CASE)["attempts"] == 2
    assert (out / "results.tsv").read_text() == results_before
    assert len(json.loads((out / "cohort.json").read_text())["runs"]) == 2


def test_an_interrupted_run_redoes_only_the_interrupted_case(cohort, tmp_path):
    out = tmp_path / "out"
    step = {"interrupt": partial(interrupt_once, str(tmp_path), "case_2")}
    with pytest.raises(KeyboardInterrupt):
        run_batch(cohort, out, custom_steps=step, **FAST)
    first = {cid: read_record(out / "cases" / cid) for cid in ("case_0", "case_1", "case_2")}
    assert [first[c]["status"] for c in first] == ["done", "done", "interrupted"]
    assert first["case_2"]["steps_done"] == ["levels", "measure", "plan"]  # it was stopped in its last step
    assert read_record(out / "cases" / "case_3") is None
    assert json.loads((out / "cohort.json").read_text())["runs"][-1]["status"] == "interrupted"

    summary = run_batch(cohort, out, custom_steps=step, **FAST)
    assert (summary.skipped, summary.ran, summary.done) == (2, 4, 5)
    for cid in ("case_0", "case_1"):
        assert read_record(out / "cases" / cid)["finished"] == first[cid]["finished"]
    redone = read_record(out / "cases" / "case_2")
    assert (
        redone["status"] == "done"
        and redone["attempts"] == 2
        and redone["started"] > first["case_2"]["started"]
    )
    assert "custom:interrupt" in redone["steps_done"]


def test_local_pool_matches_the_serial_table_and_survives_a_killed_worker(serial_run, cohort, tmp_path):
    serial_out, _ = serial_run
    out = tmp_path / "pool"
    step = {"kill": partial(kill_worker_once, str(tmp_path), "case_3")}
    summary = run_batch(cohort, out, workers=2, custom_steps=step, retries=1, **FAST)
    assert (summary.done, summary.failed) == (5, 1) and summary.executor == "local pool of 2 workers"
    assert (tmp_path / "killed-case_3").is_file()  # the worker did die once
    killed = read_record(out / "cases" / "case_3")
    assert killed["status"] == "done" and killed["attempts"] == 2
    assert (out / "results.tsv").read_text() == (serial_out / "results.tsv").read_text()
    pids = {read_record(out / "cases" / f"case_{i}")["custom"]["kill"]["pid"] for i in range(GOOD_CASES)}
    assert os.getpid() not in pids  # the cases ran in worker processes


def test_a_worker_dying_every_time_gives_a_recorded_failure(cohort, tmp_path):
    out = tmp_path / "out"
    manifest = first_cases(cohort, tmp_path / "two.csv", 2)

    summary = run_batch(
        manifest,
        out,
        workers=2,
        retries=0,
        custom_steps={"kill": partial(kill_worker_once, str(tmp_path), "case_1")},
        **FAST,
    )
    assert (summary.done, summary.failed) == (1, 1)
    rec = read_record(out / "cases" / "case_1")
    assert rec["status"] == "failed" and rec["error"]["type"] == "WorkerDied"
    assert read_record(out / "cases" / "case_0")["status"] == "done"
    assert [f["case_id"] for f in read_rows(out / "failures.tsv")] == ["case_1"]


# ---------------------------------------------------------------------------------- output folder
def test_another_cohort_in_out_is_refused_unless_resume_or_overwrite(serial_run, cohort, tmp_path):
    out, _ = serial_run
    other = first_cases(cohort, tmp_path / "other.csv", 2)
    with pytest.raises(InputError, match="holds another cohort"):
        run_batch(other, out, **FAST)
    with pytest.raises(InputError, match="both given"):
        run_batch(other, out, resume=True, overwrite=True, **FAST)
    # --resume: same inputs, same outputs -> the finished cases are kept
    copy = tmp_path / "copy"
    summary = run_batch(other, copy, **FAST)
    assert summary.done == 2
    kept = read_record(copy / "cases" / "case_0")["finished"]
    summary = run_batch(cohort, copy, resume=True, **FAST)
    assert summary.skipped == 2 and read_record(copy / "cases" / "case_0")["finished"] == kept
    # --overwrite: everything previously written is moved aside, nothing deleted
    summary = run_batch(other, copy, overwrite=True, **FAST)
    assert summary.skipped == 0 and summary.done == 2
    aside = list((copy / "superseded").iterdir())
    assert len(aside) == 1 and (aside[0] / "cohort.json").is_file()
    assert (aside[0] / "cases" / CORRUPT_CASE / "record.json").is_file()
    # a folder with other files is not taken over
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not the output folder of a batch run"):
        run_batch(other, tmp_path / "busy", **FAST)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------------------------------- inputs
def test_bad_manifests_are_refused_with_the_reason(tmp_path, cohort):
    def manifest(text: str) -> Path:
        p = tmp_path / f"m{len(list(tmp_path.iterdir()))}.csv"
        p.write_text(text)
        return p

    with pytest.raises(InputError, match="lacks the column.*image"):
        read_cohort(manifest("case_id,ct\na,x.nii.gz\n"))
    with pytest.raises(InputError, match="duplicate case ids: 'a' on rows 2, 3"):
        read_cohort(manifest(f"case_id,image\na,{cohort}\na,{cohort}\n"))
    with pytest.raises(InputError, match=r"row 3 \(b\): image 'missing.nii.gz' does not exist") as err:
        read_cohort(
            manifest(f"case_id,image,segmentation\na,{cohort},\nb,missing.nii.gz,\nc,{cohort},gone.nii.gz\n")
        )
    assert "row 4 (c): segmentation 'gone.nii.gz'" in str(err.value) and "Fix:" in str(err.value)
    with pytest.raises(InputError, match="no cases"):
        read_cohort(manifest("case_id,image\n"))
    with pytest.raises(InputError, match="cannot be folder names"):
        read_cohort(manifest(f"case_id,image\n../up,{cohort}\n"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    with pytest.raises(InputError, match="No images were found"):
        read_cohort(tmp_path / "empty")
    with pytest.raises(InputError, match="neither a folder nor a CSV"):
        read_cohort(tmp_path / "empty" / "readme.txt")
    with pytest.raises(InputError, match="Unknown step"):
        run_batch(cohort, tmp_path / "o", steps=["measure", "teleport"], progress=False)
    assert not (tmp_path / "o").exists()


def test_folder_input_finds_ct_files_and_dicom_series_but_not_label_maps(cohort, tmp_path):
    import numpy as np
    import SimpleITK as sitk

    found = find_cases(cohort.parent)
    assert [c.case_id for c in found.cases] == [f"case_{i}" for i in range(GOOD_CASES)] + [CORRUPT_CASE]
    assert all(c.image.name == "ct.nii.gz" for c in found.cases)  # labels.nii.gz and .seg.nrrd skipped
    # a DICOM series folder is one case
    series = tmp_path / "scans" / "patient 7" / "series1"
    series.mkdir(parents=True)
    volume = sitk.GetImageFromArray((np.arange(4 * 8 * 8).reshape(4, 8, 8) % 200).astype(np.int16))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(4):
        sl = volume[:, :, z]
        for tag, value in (
            ("0008|0060", "CT"),
            ("0020|000e", "1.2.3.4"),
            ("0020|0013", str(z + 1)),
            ("0020|0032", f"0\\0\\{2.0 * z}"),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
            ("0028|0030", "1\\1"),
        ):
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(series / f"slice{z}.dcm"))
        writer.Execute(sl)
    (tmp_path / "scans" / "other.nii.gz").write_bytes(b"")
    (tmp_path / "scans" / "other_seg.nii.gz").write_bytes(b"")
    found = find_cases(tmp_path / "scans")
    assert {c.case_id: c.image.name for c in found.cases} == {
        "other": "other.nii.gz",
        "patient_7_series1": "series1",
    }


# -------------------------------------------------------------------------------------------- CLI
def test_cli_batch_exit_codes_and_messages(cohort, tmp_path, capsys):
    argv = ["batch", "--input", str(cohort), "--steps", "measure", "--no-images", "--no-report"]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 3  # finished, with a failed case
    printed = capsys.readouterr().out
    assert "done 5, failed 1" in printed and f"failed: {CORRUPT_CASE} (levels)" in printed
    rows = read_rows(tmp_path / "out" / "results.tsv")
    assert rows and all(r["best_oblique_deg"] == "" for r in rows)  # measure only: no view search
    bad = tmp_path / "bad.csv"
    bad.write_text("id,image\n")
    assert cli.main(["batch", "--input", str(bad), "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err
    assert "spineai batch: error:" in err and "case_id" in err and "Fix:" in err
    with pytest.raises(SystemExit):
        cli.main(["batch", "--input", str(cohort), "--out", str(tmp_path / "o3"), "--steps", "nope"])


def test_segment_step_with_site_weights_scores_against_the_reference(tmp_path):
    from test_segmentation_fixtures import tiny_weights, write_case

    weights = tiny_weights(tmp_path)
    lines = ["case_id,image,reference"]
    for i in range(2):
        folder = write_case(tmp_path / f"syn{i}", seed=i, shape_zyx=(24, 40, 40))
        lines.append(f"syn{i},{folder / 'ct.nii.gz'},{folder / 'labels.nii.gz'}")
    manifest = tmp_path / "syn.csv"
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="do not exist"):
        run_batch(
            manifest,
            tmp_path / "none",
            steps=["segment"],
            weights=tmp_path / "no.safetensors",
            progress=False,
        )
    assert not (tmp_path / "none").exists()
    out = tmp_path / "out"
    summary = run_batch(
        manifest,
        out,
        steps=["segment"],
        weights=weights,
        device="cpu",
        surfaces=False,
        report=False,
        progress=False,
    )
    assert (summary.done, summary.failed) == (2, 0)
    rec = read_record(out / "cases" / "syn0")
    assert (
        rec["steps_done"] == ["segment"]
        and (out / "cases" / "syn0" / "segmentation" / "labels.nii.gz").is_file()
    )
    scores = rec["evaluation"]["segmentation"]
    assert "L5" in scores["structures"] and 0.0 <= scores["bone"]["dice"] <= 1.0
    cases = {c["case_id"]: c for c in read_rows(out / "cases.tsv")}
    assert cases["syn0"]["segmentation_source"] == "model"
    assert float(cases["syn0"]["dice_bone"]) == pytest.approx(scores["bone"]["dice"], abs=1e-4)
    assert read_rows(out / "results.tsv") == []  # no triangles without the measure step


# ------------------------------------------------------------------------------------------- levels
def test_levels_step_puts_the_numbering_on_every_triangle_row(cohort, tmp_path, capsys):
    """The levels step (``--steps levels,measure``) over a normal phantom and a Castellvi IV phantom."""
    from spineai.phantom import generate_ct_phantom, write_phantom_case

    transitional = write_phantom_case(
        generate_ct_phantom(5, variant="castellvi_IV", spacing_mm=2.0, progress=False), tmp_path / "tv"
    )
    manifest = tmp_path / "levels.csv"
    manifest.write_text(
        "case_id,image,segmentation,site\n"
        f"normal,{cohort.parent / 'case_0' / 'ct.nii.gz'},{cohort.parent / 'case_0' / 'labels.nii.gz'},A\n"
        f"tv,{transitional['ct']},{transitional['labels']},B\n"
    )
    argv = ["batch", "--input", str(manifest), "--out", str(tmp_path / "out"), "--steps", "levels,measure"]
    assert cli.main([*argv, "--no-images", "--no-report"]) == 0, capsys.readouterr().err
    out = tmp_path / "out"
    rows = read_rows(out / "results.tsv")
    assert len(rows) == 16 and list(rows[0])[-4:] == [
        "level_confidence",
        "level_trusted",
        "levels_flagged",
        "castellvi",
    ]
    for r in rows:
        assert len(r["level_confidence"]) == 5 and 0.0 < float(r["level_confidence"]) <= 1.0  # 3 decimals
        assert r["level_trusted"] == ("yes" if float(r["level_confidence"]) >= 0.8 else "no")
    normal = [r for r in rows if r["case_id"] == "normal"]
    tv = [r for r in rows if r["case_id"] == "tv"]
    assert {(r["levels_flagged"], r["castellvi"]) for r in normal} == {("no", "")}
    assert {(r["levels_flagged"], r["castellvi"]) for r in tv} == {("yes", "IV")}  # transitional: flagged
    # the confidence is the lower of the two vertebrae's (levels.tsv)
    vertebrae = read_rows(out / "levels.tsv")
    conf = {(v["case_id"], v["name"]): float(v["confidence"]) for v in vertebrae}
    for r in rows:
        upper, lower = r["level"].split("-")
        assert float(r["level_confidence"]) == pytest.approx(
            min(conf[(r["case_id"], upper)], conf[(r["case_id"], lower)])
        )
    assert [v["name"] for v in vertebrae if v["case_id"] == "tv"][-3:] == ["L4", "L5", "S1"]
    assert {v["site"] for v in vertebrae if v["case_id"] == "normal"} == {"A"}
    assert [v["castellvi_left"] for v in vertebrae if (v["case_id"], v["name"]) == ("tv", "L5")] != [""]
    cases = {c["case_id"]: c for c in read_rows(out / "cases.tsv")}
    assert cases["tv"]["levels_flagged"] == "yes" and cases["tv"]["castellvi"] == "IV"
    assert cases["tv"]["levels_anchor"] == "both" and cases["normal"]["steps_done"] == "levels,measure"
    assert (out / "cases" / "tv" / "levels" / "levels.json").is_file()


def test_records_written_before_the_level_columns_are_still_read(cohort, tmp_path):
    from spineai.batch import read_cohort
    from spineai.batch.record import write_record

    manifest = first_cases(cohort, tmp_path / "two.csv", 2)
    out = tmp_path / "out"
    run_batch(manifest, out, **FAST)
    # the inputs' fingerprint of a case without the later columns is the one earlier versions wrote
    import hashlib

    for case in read_cohort(manifest).cases:
        h = hashlib.sha256()
        for column in ("image", "segmentation", "mri", "reference", "truth"):
            value = getattr(case, column)
            h.update(f"{column}\0{value}\0".encode())
            if value is not None:
                st = value.stat()
                h.update(f"{value.name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        assert case.fingerprint() == h.hexdigest()
    # a record as earlier versions wrote it: no level columns, no per-case numbering values
    for cid in ("case_0", "case_1"):
        rec = read_record(out / "cases" / cid)
        for row in rec["results"]["triangles"]:
            for key in ("level_confidence", "level_trusted", "levels_flagged", "castellvi"):
                del row[key]
        rec["results"]["case"].pop("checks_flagged", None)
        write_record(out / "cases" / cid, rec)
    summary = run_batch(manifest, out, **FAST)
    assert (summary.skipped, summary.ran, summary.done) == (2, 0, 2)
    rows = read_rows(out / "results.tsv")
    assert len(rows) == 16 and all(r["levels_flagged"] == "" and r["level_confidence"] == "" for r in rows)
    assert all(r["area_mm2"] != "" for r in rows if r["status"] == "ok")


# ----------------------------------------------------------------------------- axial and radiograph
def test_axial_and_radiograph_columns_give_their_own_tables(tmp_path, monkeypatch):
    from test_api_models import radiograph_picture, tiny_radiograph_weights

    from spineai.grading.axial.phantom import generate_axial_t2, write_axial_case

    axial = write_axial_case(generate_axial_t2(7), tmp_path / "axial")["image"]
    picture = radiograph_picture(tmp_path)
    weights = tiny_radiograph_weights(tmp_path)
    manifest = tmp_path / "mri.csv"
    manifest.write_text(f"case_id,image,axial,radiograph,age\np1,{axial},{axial},{picture},61\n")
    steps = ("grade-axial", "stenosis", "radiograph")
    summary = run_batch(
        manifest, tmp_path / "out", steps=steps, radiograph_weights=weights, report=False, progress=False
    )
    assert (summary.done, summary.failed) == (1, 0), summary.failures
    out = tmp_path / "out"
    axial_rows = read_rows(out / "grading_axial.tsv")
    assert [r["grading"] for r in axial_rows] == ["ldh", "lccs", "lnrc"] and axial_rows[0]["age"] == "61"
    regions = read_rows(out / "stenosis.tsv")
    assert [r["region"] for r in regions][0] == "central_canal" and len(regions) == 5
    assert float(regions[0]["box_x1_mm"]) > float(regions[0]["box_x0_mm"])
    levels = read_rows(out / "radiograph.tsv")
    assert [r["level"] for r in levels] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    case = json.loads((out / "cases" / "p1" / "case.json").read_text())
    assert [float(r["probability"]) for r in levels] == pytest.approx(
        [lv["probability"] for lv in case["radiograph"]["levels"]], abs=1e-4
    )
    row = read_rows(out / "cases.tsv")[0]
    assert row["axial_ldh"] == str(case["axial"]["gradings"][0]["grade"])
    assert row["radiograph_positive_levels"] == ",".join(
        lv["level"] for lv in case["radiograph"]["levels"] if lv["herniation"]
    )
    # the columns a run needs are checked before it starts
    bare = tmp_path / "bare.csv"
    bare.write_text(f"case_id,image,axial\np1,{axial},{axial}\n")
    with pytest.raises(InputError, match="names no 'radiograph'"):
        run_batch(
            bare,
            tmp_path / "o1",
            steps=("stenosis", "radiograph"),
            radiograph_weights=weights,
            progress=False,
        )
    # without radiograph_weights the shipped model is used; only when its files are missing is the run
    # refused, before any case starts
    from spineai import weights as weights_module

    monkeypatch.setattr(weights_module, "MODELS_DIR", tmp_path / "no_models")
    (tmp_path / "no_models").mkdir()
    with pytest.raises(InputError, match="No radiograph model is installed") as err:
        run_batch(manifest, tmp_path / "o2", steps=("radiograph",), progress=False)
    assert "radiograph_hnp_demo" in str(err.value) and "--weights" in str(err.value)
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_radiograph_step_runs_with_the_shipped_model_when_no_weights_are_given(tmp_path):
    from test_api_models import radiograph_picture

    from spineai.radiograph.predict import DEFAULT_MODEL
    from spineai.weights import list_models

    if not any(card.name == DEFAULT_MODEL for card in list_models()):
        pytest.skip(f"the shipped radiograph model {DEFAULT_MODEL} is not installed")
    folder = tmp_path / "radiographs"
    folder.mkdir()
    picture = radiograph_picture(folder)  # a folder of pictures is a radiograph-only cohort
    summary = run_batch(folder, tmp_path / "out", steps=("radiograph",), report=False, progress=False)
    assert (summary.done, summary.failed) == (1, 0), summary.failures
    levels = read_rows(tmp_path / "out" / "radiograph.tsv")
    direct = api.read_radiograph(picture, gradcam=False)
    assert direct.design == "disc-crops" and direct.model["name"] == DEFAULT_MODEL
    assert [r["level"] for r in levels] == list(direct.probabilities())
    assert [float(r["probability"]) for r in levels] == pytest.approx(
        list(direct.probabilities().values()), abs=1e-4
    )
    case_id = read_rows(tmp_path / "out" / "cases.tsv")[0]["case_id"]
    case = json.loads((tmp_path / "out" / "cases" / case_id / "case.json").read_text())
    assert case["radiograph"]["model"]["name"] == DEFAULT_MODEL
    assert [d["level"] for d in case["radiograph"]["discs"]] == list(direct.probabilities())
