"""Synthetic radiographs: patient sampling, the disc degeneration surrogates, DRR rendering, the cohort manifest."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from spineai.anatomy import BY_NAME
from spineai.errors import InputError, OutputExistsError
from spineai.radiograph.network import LEVEL_COLUMNS, LEVELS
from spineai.radiograph.phantom import (
    HEIGHT_LOSS,
    OSTEOPHYTE_HU,
    _degenerate_level,
    render_radiograph_patient,
    sample_radiograph_patient,
    write_radiograph_cohort,
)

SMALL = {"image_px": 40, "spacing_mm": 4.0}


def test_same_seed_same_patient_and_documented_sampling():
    assert sample_radiograph_patient(5) == sample_radiograph_patient(5)
    draws = [sample_radiograph_patient(s) for s in range(1500)]
    hnp = np.array([[d["levels"][lv]["hnp"] for lv in LEVELS] for d in draws])
    sev = np.array([[d["levels"][lv]["degeneration"] for lv in LEVELS] for d in draws])
    ages = np.array([d["age"] for d in draws])
    rate = hnp.mean(axis=0)
    assert rate[3] > rate[0] and rate[4] > rate[1]  # lower levels herniate more often
    visible = sev[hnp == 1] >= 0.4
    assert 0.74 < visible.mean() < 0.86  # 80 % of herniated levels look degenerated
    assert np.all(sev[hnp == 1][~visible] < 0.15)
    background = (sev > 0) & (hnp == 0)
    old, young = ages > 65, ages < 35
    assert background[old].mean() > 2 * background[young].mean()  # degeneration grows with age
    with pytest.raises(InputError, match="prevalence"):
        sample_radiograph_patient(1, prevalence={"L4-L5": 0.3})


def test_degeneration_sclerosis_and_osteophytes_on_a_label_map():
    lab = np.zeros((30, 40, 40), dtype=np.uint8)
    lab[5:13, 10:30, 10:30] = BY_NAME["L4"].label
    lab[13:17, 10:30, 10:30] = BY_NAME["disc_L4_L5"].label
    lab[17:25, 10:30, 10:30] = BY_NAME["L5"].label
    hu0 = np.full(lab.shape, 40.0, dtype=np.float32)
    hu0[lab == BY_NAME["L4"].label] = 250.0
    hu0[lab == BY_NAME["L5"].label] = 250.0
    hu = hu0.copy()
    _degenerate_level(hu, lab, np.array([1.0, 1.0, 1.0]), "L4-L5", 1.0, np.random.default_rng(0))
    gain = hu - hu0
    assert gain[12, 20, 20] > 300 and gain[16 + 1, 20, 20] > 300  # endplates next to the disc
    assert gain[6, 20, 20] == 0 and gain[24, 20, 20] == 0  # bone far from the disc unchanged
    assert np.all(gain[lab == BY_NAME["disc_L4_L5"].label] == 0)
    spur = (hu >= OSTEOPHYTE_HU) & (lab == 0)
    assert spur.any()
    assert np.all(lab[hu >= OSTEOPHYTE_HU] == 0)  # only outside bone and disc
    ys = np.nonzero(spur)[1]
    assert ys.mean() < 20  # anterior half (smaller y = anterior in LPS)
    untouched = hu0.copy()
    _degenerate_level(untouched, lab, np.array([1.0, 1.0, 1.0]), "L4-L5", 0.0, np.random.default_rng(0))
    assert np.array_equal(untouched, hu0)


def test_rendered_patient_loses_disc_height_at_the_degenerated_level():
    p = sample_radiograph_patient(7)
    for lv in LEVELS:
        p["levels"][lv].update(hnp=0, degeneration=0.0, herniation=None)
    normal = render_radiograph_patient(p, views=("lateral",), **SMALL)
    p["levels"]["L4-L5"].update(hnp=1, degeneration=1.0, herniation={"side": "left", "size_mm": 5.0})
    sick = render_radiograph_patient(p, views=("lateral", "ap"), **SMALL)
    h0, h1 = normal.truth["disc_heights_mm"], sick.truth["disc_heights_mm"]
    assert h1["L4-L5"] == pytest.approx(h0["L4-L5"] * (1 - HEIGHT_LOSS))
    assert h1["L3-L4"] == pytest.approx(h0["L3-L4"])
    assert set(sick.images) == {"lateral", "ap"} and sick.images["ap"].shape == (40, 40)
    assert sick.images["ap"].dtype == np.uint8 and sick.images["ap"].std() > 10
    assert sick.labels() == [0, 0, 0, 1, 0] and sick.pixel_mm == pytest.approx(6.0)
    assert not np.array_equal(sick.images["lateral"], normal.images["lateral"])
    z = [sick.truth["disc_centres_lps_mm"][lv][2] for lv in LEVELS]
    assert np.all(np.diff(z) < 0)  # L1-L2 above L5-S1


def test_cohort_manifest_resumes_and_refuses_to_overwrite(tmp_path, monkeypatch):
    import spineai.radiograph.phantom as ph

    original = ph.render_radiograph_patient
    calls = []

    def small(patient, **kw):
        calls.append(patient["seed"])
        return original(patient, views=("ap",), **SMALL)

    monkeypatch.setattr(ph, "render_radiograph_patient", small)
    manifest = write_radiograph_cohort(tmp_path / "c", [3, 4])
    rows = list(csv.DictReader(open(manifest, encoding="utf-8")))
    assert [r["patient_id"] for r in rows] == ["p000003", "p000004"]
    assert list(rows[0]) == ["patient_id", "image", "view", "age", *LEVEL_COLUMNS]
    truth = json.loads((tmp_path / "c" / "patients" / "p000004" / "truth.json").read_text())
    assert [int(rows[1][c]) for c in LEVEL_COLUMNS] == [truth["levels"][lv]["hnp"] for lv in LEVELS]
    assert (tmp_path / "c" / rows[0]["image"]).is_file()
    with pytest.raises(OutputExistsError):
        write_radiograph_cohort(tmp_path / "c", [3, 4])
    write_radiograph_cohort(tmp_path / "c", [3, 4, 5], overwrite=True)
    assert calls == [3, 4, 5]  # finished patients are not rendered again
