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
