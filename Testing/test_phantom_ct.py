"""Synthetic lumbosacral CT phantom: anatomy, labels, HU, reproducibility, pose, and the analytic
ground-truth triangles checked against the rendered label map."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.anatomy import BY_NAME
from spineai.errors import InputError, OutputExistsError
from spineai.phantom import (
    PhantomParams,
    all_triangles,
    build_anatomy,
    generate_ct_phantom,
    sample_params,
    write_phantom_case,
)
from spineai.phantom.geometry import side_sign
from spineai.phantom.truth import foramen_triangles, reference_view, triangles_in_view

LEVELS = ("L4-L5", "L5-S1")
SIDES = ("left", "right")
IDENTITY = dict(pose_rotation_deg=(0.0, 0.0, 0.0), pose_translation_mm=(0.0, 0.0, 0.0))


# ------------------------------------------------------------------------------------------ helpers
def _points(case, name: str) -> np.ndarray:
    """World coordinates (N, 3) of the voxels labelled ``name``."""
    lab = sitk.GetArrayViewFromImage(case.labels)
    idx = np.argwhere(lab == BY_NAME[name].label)  # (z, y, x)
    sp, org = np.asarray(case.labels.GetSpacing()), np.asarray(case.labels.GetOrigin())
    return org + idx[:, ::-1] * sp


@pytest.fixture(scope="module")
def case_2mm():
    return generate_ct_phantom(11, spacing_mm=(2.0, 2.0, 2.0), progress=False)


@pytest.fixture(scope="module")
def case_1mm():
    return generate_ct_phantom(4, spacing_mm=(1.0, 1.0, 1.0), progress=False, **IDENTITY)


# ------------------------------------------------------------------------------------ structures
def test_every_truth_structure_is_labelled_with_a_plausible_volume(case_2mm):
    truth = case_2mm.truth
    lab = sitk.GetArrayViewFromImage(case_2mm.labels)
    expected = {
        "L3",
        "L4",
        "L5",
        "S1",
        "ilium_left",
        "ilium_right",
        "disc_L3_L4",
        "disc_L4_L5",
        "disc_L5_S1",
        "dural_sac",
    } | {f"root_{lv}_{s}" for lv in ("L3", "L4", "L5", "S1") for s in SIDES}
    assert expected <= set(truth["structures"])
    voxel_ml = float(np.prod(case_2mm.labels.GetSpacing())) / 1000.0
    ranges = {
        "vertebra": (30.0, 160.0),
        "sacrum": (60.0, 600.0),
        "ilium": (10.0, 600.0),
        "disc": (6.0, 35.0),
        "dural_sac": (3.0, 40.0),
        "root": (0.15, 6.0),
    }
    for name in truth["structures"]:
        count = int(np.count_nonzero(lab == BY_NAME[name].label))
        assert count == truth["structure_voxels"][name] > 0, name
        kind = BY_NAME[name].kind
        lo, hi = ranges["dural_sac" if kind == "dural_sac" else kind]
        assert lo <= count * voxel_ml <= hi, (name, count * voxel_ml)
    assert truth["levels_in_view"] == ["L3", "L4", "L5", "S1"]


def test_l3_is_cranial_of_s1_and_left_structures_are_at_plus_x(case_1mm):
    lm = case_1mm.truth["landmarks"]["vertebrae"]
    assert (
        lm["L3"]["body_center"][2]
        > lm["L4"]["body_center"][2]
        > lm["L5"]["body_center"][2]
        > lm["S1"]["body_center"][2]
    )
    for name in ("root_L5", "root_S1", "root_L4", "ilium"):
        left = _points(case_1mm, f"{name}_left")[:, 0].mean()
        right = _points(case_1mm, f"{name}_right")[:, 0].mean()
        assert left > 5.0 and right < -5.0, name
    # the spinous processes are posterior (+y) of the vertebral bodies
    l4 = _points(case_1mm, "L4")
    assert l4[:, 1].max() > lm["L4"]["body_center"][1] + 40.0


def test_exiting_root_passes_between_the_pedicles_lateral_of_the_dural_sac(case_1mm):
    truth = case_1mm.truth
    sac = _points(case_1mm, "dural_sac")
    for level in ("L3-L4", "L4-L5", "L5-S1"):
        upper, lower = level.split("-")
        axis = np.asarray(truth["landmarks"]["vertebrae"][lower]["axis"])
        for side in SIDES:
            sx = side_sign(side)
            f = truth["landmarks"]["foramina"][level][side]
            top = float(np.dot(axis, f["upper_pedicle_lowest_point"]))
            bottom = float(np.dot(axis, f["lower_pedicle_highest_point"]))
            root = _points(case_1mm, f"root_{upper}_{side}")
            # the root's voxels in the pedicles' column (lateral and antero-posterior extent of the pedicle)
            ped_c = np.asarray(truth["landmarks"]["vertebrae"][upper][f"pedicle_center_{side}"])
            post = np.asarray(truth["landmarks"]["vertebrae"][upper]["posterior_axis"])
            lat = np.cross(post, axis)
            lat *= sx / np.sign(lat[0])
            rel = root - ped_c
            in_column = (np.abs(rel @ lat) < 3.0) & (np.abs(rel @ post) < 4.0)
            assert in_column.sum() >= 5, (level, side)
            heights = root[in_column] @ axis
            assert heights.max() < top and heights.min() > bottom, (level, side)
            # lateral of the dural sac, on its own side
            assert np.all(sx * root[in_column][:, 0] > (sx * sac[:, 0]).max()), (level, side)


# ------------------------------------------------------------------------------------ triangles
def _roi_case(
    seed: int,
    fkey: str,
    pose: tuple[float, float, float],
    spacing: float = 0.5,
    size: float = 64.0,
    **overrides,
):
    params = sample_params(
        seed,
        pose_rotation_deg=pose,
        pose_translation_mm=(3.0, -4.0, 2.0),
        noise_hu=0.0,
        blur_mm=0.0,
        **overrides,
    )
    anatomy = build_anatomy(params)
    fg = anatomy.foramina[fkey]
    res = triangles_in_view(fg, reference_view(fg))
    centre = 0.5 * (res["kambin"]["vertices_body"].mean(axis=0) + res["safe"]["vertices_body"].mean(axis=0))
    centre = centre - 8.0 * fg.lateral  # toward the vertebral bodies, so their lateral borders are in view
    return generate_ct_phantom(
        seed,
        params=params,
        fov_center_body_mm=tuple(centre),
        fov_mm=(size, size, size),
        spacing_mm=(spacing,) * 3,
        progress=False,
    )


def _region(case, name: str, body_mask=None) -> np.ndarray:
    pts = _points(case, name)
    if body_mask is not None:
        pts = pts[body_mask(case.anatomy.to_body(pts))]
    return pts


def _edge_regions(case, fkey: str) -> dict[tuple[str, str], np.ndarray]:
    """World points of the labelled region each triangle edge is measured on (the recipes of docs/phantom.md)."""
    anatomy = case.anatomy
    fg = anatomy.foramina[fkey]
    up_v = anatomy.vertebrae[fg.upper]
    seg = fg.foraminal_segment
    seg_vec = np.asarray(seg.b) - np.asarray(seg.a)
    seg_len = float(np.linalg.norm(seg_vec))
    d = seg_vec / seg_len
    t_e = float(np.dot(fg.axis, fg.lower_endplate_point))
    p_low = fg.upper_pedicle.support_point(-fg.axis)
    sx = side_sign(fg.side)

    def foraminal(b):  # the straight segment, 3 mm clear of its ends (ganglion, bends)
        u = (b - seg.a) @ d
        return (u > 3.0) & (u < seg_len - 3.0)

    def above_endplate(b):  # the lower vertebra above its superior endplate plane: the SAP only
        return (b @ fg.axis > t_e + 0.3) & (sx * b[:, 0] > 0)

    def pedicle_column(b):  # a 5 x 5 mm column (upper vertebra's axes) around the pedicle's lowest point
        rel = (b - p_low) @ up_v.frame.rotation
        behind_wall = up_v.frame.to_local(b)[:, 1] > up_v.y_wall
        return (np.abs(rel[:, 0]) < 2.5) & (np.abs(rel[:, 1]) < 2.5) & behind_wall

    def body_only(b):  # the vertebral body: in front of the pedicles' anterior ends
        return up_v.frame.to_local(b)[:, 1] < up_v.y_wall - 5.0

    return {
        ("kambin", "hypotenuse"): _region(case, fg.exiting_root, foraminal),
        ("kambin", "height"): np.vstack(
            [_region(case, fg.lower, above_endplate), _region(case, fg.traversing_root, above_endplate)]
        ),
        ("kambin", "base"): _region(case, f"disc_{fg.upper}_{fg.lower}"),
        ("safe", "hypotenuse"): _region(case, fg.exiting_root, foraminal),
        ("safe", "height"): _region(case, fg.upper, body_only),
        ("safe", "base"): _region(case, fg.upper, pedicle_column),
    }


_PATHOLOGY = dict(
    herniations=({"level": "L5-S1", "side": "right", "size_mm": 6.0},),
    stenoses=({"level": "L5-S1", "side": "right", "severity": 0.6},),
)


@pytest.mark.parametrize(
    "pose,fkey,overrides",
    [
        ((0.0, 0.0, 0.0), "L5-S1/left", {}),
        ((9.0, -7.0, 12.0), "L4-L5/right", {}),
        ((-6.0, 5.0, -10.0), "L5-S1/right", _PATHOLOGY),
    ],
)
def test_triangle_edges_are_borders_of_the_labelled_structures(pose, fkey, overrides):
    """Every edge of both triangles is the supporting line of its structure in the rendered label map
    (0.5 mm voxels): the labels reach the line to within one voxel and never cross it. Also with a
    herniated disc (displaced traversing root) and foraminal stenosis (root pressed to the pedicle)."""
    case = _roi_case(5, fkey, pose, **overrides)
    level, side = fkey.split("/")
    tri = case.truth["triangles"][level][side]
    regions = _edge_regions(case, fkey)
    for kind in ("kambin", "safe"):
        assert tri[kind]["area_mm2"] > 0 and not tri[kind]["degenerate"]
        for edge in tri[kind]["edges"]:
            pts = regions[(kind, edge["name"])]
            assert len(pts) > 10, (fkey, kind, edge["name"])
            u = np.asarray(edge["support_direction_lps"])
            tol = 0.5 * float(np.abs(u).sum()) + 1e-3  # one voxel (0.5 mm) along u
            if (kind, edge["name"]) == ("kambin", "base"):
                # the disc lies on the lower endplate: its lowest point along the axis is the base line
                measured = -float(np.max(pts @ -u))
                assert edge["support_value_mm"] - 1e-3 <= measured <= edge["support_value_mm"] + tol
                continue
            measured = float(np.max(pts @ u))
            assert edge["support_value_mm"] - tol <= measured <= edge["support_value_mm"] + 1e-3, (
                fkey,
                kind,
                edge["name"],
                measured,
                edge["support_value_mm"],
            )
        # the vertices are the pairwise intersections of the edge lines
        verts = np.asarray(tri[kind]["vertices_lps_mm"])
        names = tri[kind]["vertex_names"]
        for edge in tri[kind]["edges"]:
            u = np.asarray(edge["support_direction_lps"])
            for vname in edge["vertices"]:
                assert float(verts[names.index(vname)] @ u) == pytest.approx(
                    edge["support_value_mm"], abs=1e-3
                )
    # the triangles lie in the plane orthogonal to the view through the root's foraminal midpoint
    n = np.asarray(tri["kambin"]["plane_normal_lps"])
    q = np.asarray(tri["kambin"]["plane_point_lps"])
    for kind in ("kambin", "safe"):
        assert np.allclose((np.asarray(tri[kind]["vertices_lps_mm"]) - q) @ n, 0.0, atol=1e-3)


def _distance_to_triangle(c: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Distance from 2D points ``c`` (N, 2) to triangle ``q`` (3, 2); negative inside."""
    dists, signs = [], []
    for i in range(3):
        a, b = q[i], q[(i + 1) % 3]
        e = b - a
        t = np.clip(((c - a) @ e) / (e @ e), 0.0, 1.0)
        dists.append(np.linalg.norm(c - (a + t[:, None] * e), axis=1))
        signs.append(e[0] * (c[:, 1] - a[1]) - e[1] * (c[:, 0] - a[0]))
    d = np.min(dists, axis=0)
    s = np.array(signs)
    inside = np.all(s > 0, axis=0) | np.all(s < 0, axis=0)
    return np.where(inside, -d, d)


def test_no_nerve_root_projects_into_a_triangle():
    """Each window is free of neural tissue in its own view: every root capsule (axis sampled, radius
    added) projects outside both triangles of every foramen."""
    t = np.linspace(0.0, 1.0, 80)[:, None]
    for seed in (8, 13):
        anatomy = build_anatomy(sample_params(seed))
        caps = [c for root in anatomy.roots.values() for c in root.capsules()]
        for fkey, fg in anatomy.foramina.items():
            res = triangles_in_view(fg, reference_view(fg))
            lateral, up, origin = res["lateral"], res["up"], res["origin"]
            for kind in ("kambin", "safe"):
                q = res[kind]["vertices_image"]
                for cap in caps:
                    p = np.asarray(cap.a) + t * (np.asarray(cap.b) - np.asarray(cap.a)) - origin
                    dist = _distance_to_triangle(np.column_stack([p @ lateral, p @ up]), q)
                    assert dist.min() >= cap.radius - 1e-3, (
                        seed,
                        fkey,
                        kind,
                        cap.part,
                        dist.min(),
                        cap.radius,
                    )


def test_triangle_areas_grow_with_foraminal_height_and_shrink_with_root_diameter():
    seed = 2
    base = sample_params(seed)
    key = "L4-L5/left"
    root = "root_L4_left"

    def areas(**changes):
        tri = all_triangles(build_anatomy(base.replace(**changes)), with_visibility=False)["L4-L5"]["left"]
        return tri["kambin"]["area_mm2"], tri["safe"]["area_mm2"]

    lo_h = areas(foramina={key: {"height_mm": 17.0}})
    hi_h = areas(foramina={key: {"height_mm": 19.5}})
    assert hi_h[0] > lo_h[0] > 0 and hi_h[1] > lo_h[1] > 0
    thin = areas(roots={root: {"diameter_mm": 4.0}})
    thick = areas(roots={root: {"diameter_mm": 5.5}})
    assert thick[0] < thin[0] and thick[1] < thin[1]
    # foraminal stenosis on that side shrinks both windows and records the compressed exiting root
    from spineai.phantom import Stenosis

    sten = areas(stenoses=(Stenosis("L4-L5", "left", 0.8),))
    normal = areas()
    assert sten[0] < normal[0] and sten[1] < normal[1]


def test_l5_s1_areas_over_50_seeds_span_the_published_ranges():
    kambin, safe = [], []
    for seed in range(50):
        tri = all_triangles(build_anatomy(sample_params(seed)), with_visibility=False)["L5-S1"]
        for side in SIDES:
            kambin.append(tri[side]["kambin"]["area_mm2"])
            safe.append(tri[side]["safe"]["area_mm2"])
    kambin, safe = np.asarray(kambin), np.asarray(safe)
    # Fan et al. 2019, Table 4: Kambin 37.8 +- 20.9 (15.1-87.5), safe 8.69 +- 2.24; ranges 10-84 and 4-18
    assert kambin.min() < 12 and kambin.max() > 75 and 25 < kambin.mean() < 50
    assert safe.min() < 4 and safe.max() > 14 and 6 < safe.mean() < 12
    assert np.all(kambin > 0) and np.all(safe > 0)


# ------------------------------------------------------------------------------------ visibility
def test_high_iliac_crest_hides_the_lumbosacral_window_in_the_standard_view():
    seed = 6
    for crest, blocked in ((62.0, True), (10.0, False)):
        anatomy = build_anatomy(sample_params(seed, iliac_crest_height_mm=crest))
        for side in SIDES:
            tri = foramen_triangles(anatomy, f"L5-S1/{side}")
            for kind in ("kambin", "safe"):
                view = tri[kind]["standard_view"]
                if blocked:
                    assert not view["visible"] and f"ilium_{side}" in view["blocking_structures"], (
                        side,
                        kind,
                    )
                    assert max(view["blocked_by"], key=view["blocked_by"].get) == f"ilium_{side}"
                else:
                    assert view["visible"] and not any(
                        s.startswith("ilium") for s in view["blocking_structures"]
                    )


# ---------------------------------------------------------------------------- reproducibility, pose
def test_identical_seeds_give_identical_volumes_and_different_seeds_differ():
    small = dict(spacing_mm=(2.5, 2.5, 2.5), fov_mm=(120.0, 120.0, 120.0), progress=False)
    a = generate_ct_phantom(21, **small)
    b = generate_ct_phantom(21, **small)
    c = generate_ct_phantom(22, **small)
    assert np.array_equal(sitk.GetArrayViewFromImage(a.image), sitk.GetArrayViewFromImage(b.image))
    assert np.array_equal(sitk.GetArrayViewFromImage(a.labels), sitk.GetArrayViewFromImage(b.labels))
    assert json.dumps(a.truth, sort_keys=True) == json.dumps(b.truth, sort_keys=True)
    assert not np.array_equal(sitk.GetArrayViewFromImage(a.labels), sitk.GetArrayViewFromImage(c.labels))
    assert a.params != c.params
    # the parameters in truth.json reproduce the case
    assert PhantomParams.from_dict(json.loads(json.dumps(a.truth["params"]))) == a.params


def test_pose_and_anisotropic_spacing_truth_follows_the_pose():
    pose, shift = (12.0, -9.0, 14.0), (6.0, -8.0, 5.0)
    case = generate_ct_phantom(
        9, spacing_mm=(0.7, 0.7, 3.0), pose_rotation_deg=pose, pose_translation_mm=shift, progress=False
    )
    assert case.image.GetSpacing() == pytest.approx((0.7, 0.7, 3.0))
    assert case.image.GetPixelID() == sitk.sitkInt16 and case.labels.GetPixelID() == sitk.sitkUInt8
    assert case.labels.GetSize() == case.image.GetSize()
    assert {"L5", "S1", "disc_L5_S1", "root_L5_left", "root_S1_right"} <= set(case.truth["structures"])
    straight = build_anatomy(
        case.params.replace(pose_rotation_deg=(0.0, 0.0, 0.0), pose_translation_mm=(0.0, 0.0, 0.0))
    )
    ref = all_triangles(straight, with_visibility=False)
    r = np.asarray(case.truth["pose"]["rotation_matrix"])
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-6)
    for level in LEVELS:
        for side in SIDES:
            for kind in ("kambin", "safe"):
                moved = np.asarray(case.truth["triangles"][level][side][kind]["vertices_lps_mm"])
                still = np.asarray(ref[level][side][kind]["vertices_lps_mm"])
                assert np.allclose(moved, still @ r.T + np.asarray(shift), atol=1e-3)
                assert case.truth["triangles"][level][side][kind]["area_mm2"] == pytest.approx(
                    ref[level][side][kind]["area_mm2"], abs=1e-3
                )
    # the label map moved with the pose: vertebral body centres carry their own labels
    lab = case.labels
    for name in ("L4", "L5", "S1"):
        centre = case.truth["landmarks"]["vertebrae"][name]["body_center"]
        idx = lab.TransformPhysicalPointToIndex(centre)
        assert lab[idx] == BY_NAME[name].label, name


# ------------------------------------------------------------------------------------------- HU
def test_tissue_intensities_are_plausible(case_1mm):
    img = sitk.GetArrayViewFromImage(case_1mm.image).astype(float)
    lab = sitk.GetArrayViewFromImage(case_1mm.labels)
    hu = case_1mm.truth["hu"]
    from scipy.ndimage import binary_erosion

    def inner(name: str, it: int) -> np.ndarray:
        return img[binary_erosion(lab == BY_NAME[name].label, iterations=it)]

    cancellous = inner("L4", 4)
    assert 140 < np.median(cancellous) < 320 and abs(np.median(cancellous) - hu["cancellous"]) < 40
    assert np.percentile(img[lab == BY_NAME["L4"].label], 99) > 700  # cortical shell
    assert 60 < np.median(inner("disc_L4_L5", 2)) < 110
    assert -15 < np.median(inner("dural_sac", 2)) < 30
    roots = np.concatenate([img[lab == BY_NAME[f"root_L5_{s}"].label] for s in SIDES])
    assert 0 < np.median(roots) < 70
    assert np.median(img[:, -2:, :]) < -900  # air behind the patient's back (the posterior edge, +y)
    # fat and muscle from the analytic anatomy (not labelled): sample voxels deep inside them
    body = case_1mm.anatomy
    rng = np.random.default_rng(0)
    flat = rng.choice(img.size, 60000, replace=False)
    zyx = np.column_stack(np.unravel_index(flat, img.shape))
    world = np.asarray(case_1mm.image.GetOrigin()) + zyx[:, ::-1] * np.asarray(case_1mm.image.GetSpacing())
    pts = body.to_body(world)
    clear = lab.ravel()[flat] == 0
    for later in ("retroperitoneal_fat", "epidural_fat", "vessels"):
        clear &= body.structure(later).sdf_points(pts) > 1.5
    values = img.ravel()[flat]
    muscle = (body.structure("muscle_psoas_left").sdf_points(pts) < -2.0) & clear
    fat = (body.structure("subcutaneous_fat").sdf_points(pts) < -1.5) & (
        body.structure("trunk").sdf_points(pts) > 1.5
    )
    for sel, lo, hi in ((muscle, 35, 70), (fat, -130, -70)):
        assert sel.sum() > 30
        assert lo < np.median(values[sel]) < hi


# ---------------------------------------------------------------------------------- writing, input
def test_write_phantom_case_writes_all_files_and_refuses_to_overwrite(case_2mm, tmp_path):
    out = tmp_path / "case"
    paths = write_phantom_case(case_2mm, out)
    assert set(paths) == {"ct", "labels", "labels_sidecar", "segmentation", "truth"}
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0
    truth = json.loads(paths["truth"].read_text())
    assert truth["triangles"]["L5-S1"]["left"]["kambin"]["vertex_names"] == [
        "apex",
        "base_medial",
        "base_lateral",
    ]
    assert truth["seed"] == 11
    ct = sitk.ReadImage(str(paths["ct"]))
    assert ct.GetSize() == case_2mm.image.GetSize()
    labels = sitk.ReadImage(str(paths["labels"]))
    assert np.array_equal(sitk.GetArrayViewFromImage(labels), sitk.GetArrayViewFromImage(case_2mm.labels))
    with pytest.raises(OutputExistsError):
        write_phantom_case(case_2mm, out)
    write_phantom_case(case_2mm, out, overwrite=True)


def test_bad_parameters_are_rejected_with_a_fix():
    with pytest.raises(InputError, match="Unknown phantom parameter"):
        sample_params(0, crest=40)
    with pytest.raises(InputError, match="spacing_mm"):
        sample_params(0, spacing_mm=(0.0, 1.0, 1.0))
    with pytest.raises(InputError, match="lumbar_levels"):
        sample_params(0, lumbar_levels=("L3", "L5"))
    with pytest.raises(InputError, match="foramina"):
        sample_params(0, foramina={"L9-S1/left": {"height_mm": 20}})


def test_a_sixth_lumbar_vertebra_is_modelled_from_the_level_list():
    params = sample_params(3, lumbar_levels=("L3", "L4", "L5", "L6"))
    anatomy = build_anatomy(params)
    assert set(anatomy.foramina) >= {"L5-L6/left", "L6-S1/right"}
    assert {"root_L6_left", "root_L6_right"} <= set(anatomy.roots)
    tri = all_triangles(anatomy, with_visibility=False)
    assert tri["L6-S1"]["left"]["kambin"]["area_mm2"] > 0
    assert tri["L5-L6"]["right"]["safe"]["edges"][0]["structure"] == "root_L5_right"
