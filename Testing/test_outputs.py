"""Outputs are written atomically and never overwrite anything unless asked."""

from __future__ import annotations

import json

import pytest

from spineai.errors import InputError, OutputExistsError
from spineai.outputs import atomic_path, prepare_output_dir, write_json, write_text


def test_write_refuses_to_overwrite_and_keeps_the_original(tmp_path):
    target = tmp_path / "result.json"
    target.write_text("user's own file")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        write_json(target, {"a": 1})
    assert target.read_text() == "user's own file"
    write_json(target, {"a": 1}, overwrite=True)
    assert json.loads(target.read_text()) == {"a": 1}


def test_a_crash_while_writing_leaves_no_partial_file(tmp_path):
    target = tmp_path / "labels.nii.gz"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash in the middle")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_crash_while_overwriting_keeps_the_old_file(tmp_path):
    target = tmp_path / "table.tsv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_text("new but unfinished")
            raise RuntimeError("crash")
    assert target.read_text() == "old\n"


def test_temporary_file_keeps_the_multi_part_extension(tmp_path):
    with atomic_path(tmp_path / "seg.seg.nrrd") as tmp:
        assert tmp.name.endswith(".seg.nrrd")
        tmp.write_text("x")


def test_output_folder_must_be_new_or_empty(tmp_path):
    out = tmp_path / "out"
    assert prepare_output_dir(out) == out
    (out / "kept.txt").write_text("keep me")
    with pytest.raises(OutputExistsError):
        prepare_output_dir(out)
    prepare_output_dir(out, overwrite=True)
    assert (out / "kept.txt").read_text() == "keep me"


def test_input_error_names_problem_and_fix():
    err = InputError("the CT has NaN voxels", "replace them or re-export the scan")
    assert "NaN" in str(err) and "Fix: re-export" not in str(err) and "Fix: replace" in str(err)
    assert isinstance(err, ValueError)


def test_written_files_get_the_usual_permissions_not_private_ones(tmp_path):
    import os
    import stat

    from spineai.outputs import write_json

    mask = os.umask(0o022)
    try:
        path = write_json(tmp_path / "shared.json", {"a": 1})
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_an_output_folder_is_checked_before_work_without_creating_it(tmp_path):
    from spineai.outputs import check_output_dir

    new = tmp_path / "new"
    assert check_output_dir(new) == new and not new.exists()  # nothing created
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_dir(empty) == empty
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("kept")
    with pytest.raises(OutputExistsError):
        check_output_dir(full)
    assert check_output_dir(full, overwrite=True) == full
    a_file = tmp_path / "a_file"
    a_file.write_text("kept")
    for overwrite in (False, True):  # a file is never taken for a folder
        with pytest.raises(OutputExistsError):
            check_output_dir(a_file, overwrite=overwrite)
    assert (full / "mine.txt").read_text() == "kept" and a_file.read_text() == "kept"
