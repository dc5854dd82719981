"""Rasterise the analytic phantom into a CT volume (HU) and a canonical label map, with its truth.

Voxels are evaluated only inside each primitive's bounding box. A voxel carries a structure's label
when its centre lies inside the structure (signed distance < 0; later structures win). Intensities are
partial-volume mixtures: each structure covers the fraction ``clip(0.5 - d / w, 0, 1)`` of a voxel,
where ``d`` is the signed distance at the voxel centre and ``w = sum_i |d(i+1) - d(i-1)| / 2`` is the
voxel's width across the surface (which handles anisotropic voxels, e.g. 0.7 x 0.7 x 3 mm). Then a
Gaussian point-spread (``blur_mm``) and white noise (``noise_hu``) are applied. The same seed and
parameters give bit-identical volumes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from .. import __version__
from ..anatomy import BY_LABEL, BY_NAME, CANONICAL, SIDES
from ..errors import InputError
from ..outputs import prepare_output_dir, write_json
from ..progress import track
from .geometry import Anatomy, Structure, build_anatomy
from .params import PhantomParams, sample_params
from .truth import all_triangles, landmarks, morphometry

#: the most voxels one case may have (about 1.6 GB of working memory)
MAX_VOXELS = 120_000_000
_CORTEX_MM = 1.2
_TEXTURE = {
    "bone": 40.0,
    "muscle": 6.0,
    "fat": 8.0,
    "soft": 10.0,
    "disc": 4.0,
    "nerve": 3.0,
    "csf": 2.0,
    "vessel": 3.0,
    "skin": 5.0,
}


@dataclass
class PhantomCase:
    """One generated case.

    Attributes:
        image: CT, ``sitk.Image`` int16 (or float32) in HU, LPS physical frame, identity direction.
        labels: ``sitk.Image`` uint8 on the same grid, canonical label values (:mod:`spineai.anatomy`).
        truth: JSON-serialisable ground truth (see :func:`spineai.phantom.truth` and docs/phantom.md).
        seed: the seed.
        params: the :class:`PhantomParams` used.
        anatomy: the analytic anatomy (primitives, frames), for further analytic queries.
    """

    image: sitk.Image
    labels: sitk.Image
    truth: dict[str, Any]
    seed: int
    params: PhantomParams
    anatomy: Anatomy = field(repr=False)


@dataclass
class _Grid:
    size: np.ndarray  # (nx, ny, nz)
    spacing: np.ndarray
    origin: np.ndarray  # world LPS of voxel (0, 0, 0)

    def axes(self) -> list[np.ndarray]:
        return [self.origin[i] + self.spacing[i] * np.arange(self.size[i]) for i in range(3)]


def _make_grid(anatomy: Anatomy) -> _Grid:
    spacing = np.asarray(anatomy.params.spacing_mm, dtype=float)
    size = np.maximum(1, np.ceil(anatomy.fov_size_mm / spacing - 1e-9).astype(int))
    n = int(np.prod(size))
    if n > MAX_VOXELS:
        raise InputError(
            f"The phantom grid would have {n:,} voxels ({size[0]} x {size[1]} x {size[2]} at spacing "
            f"{tuple(spacing)} mm), more than the {MAX_VOXELS:,} allowed.",
            "use a coarser spacing_mm or a smaller fov_mm",
        )
    origin = -0.5 * (size - 1) * spacing
    return _Grid(size, spacing, origin)


class _Rasteriser:
    """Evaluates structures on blocks of the grid (body-frame coordinates computed per block)."""

    def __init__(self, anatomy: Anatomy, grid: _Grid) -> None:
        self.anatomy = anatomy
        self.grid = grid
        self.axes = grid.axes()
        self.rt = anatomy.rotation.T  # world -> body rotation (applied to w - t)
        self.pad = 3

    def block_of(self, lo_body: np.ndarray, hi_body: np.ndarray) -> tuple[slice, slice, slice] | None:
        """Index slices (z, y, x) covering a body-frame box, padded, clipped; ``None`` when outside."""
        corners = np.array(
            [
                [a, b, c]
                for a in (lo_body[0], hi_body[0])
                for b in (lo_body[1], hi_body[1])
                for c in (lo_body[2], hi_body[2])
            ]
        )
        w = self.anatomy.to_world(corners)
        wlo, whi = w.min(axis=0), w.max(axis=0)
        sl = []
        for ax in range(3):
            i0 = int(np.floor((wlo[ax] - self.grid.origin[ax]) / self.grid.spacing[ax])) - self.pad
            i1 = int(np.ceil((whi[ax] - self.grid.origin[ax]) / self.grid.spacing[ax])) + self.pad + 1
            i0, i1 = max(i0, 0), min(i1, int(self.grid.size[ax]))
            if i1 <= i0:
                return None
            sl.append(slice(i0, i1))
        return sl[2], sl[1], sl[0]

    def body_coords(self, block: tuple[slice, slice, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Body-frame coordinates (float32, shape of the block in z, y, x order)."""
        zs, ys, xs = block
        t = self.anatomy.translation
        wx = (self.axes[0][xs] - t[0]).astype(np.float32)[None, None, :]
        wy = (self.axes[1][ys] - t[1]).astype(np.float32)[None, :, None]
        wz = (self.axes[2][zs] - t[2]).astype(np.float32)[:, None, None]
        r = self.rt.astype(np.float32)
        c = self.anatomy.fov_center_body.astype(np.float32)
        bx = c[0] + r[0, 0] * wx + r[0, 1] * wy + r[0, 2] * wz
        by = c[1] + r[1, 0] * wx + r[1, 1] * wy + r[1, 2] * wz
        bz = c[2] + r[2, 0] * wx + r[2, 1] * wy + r[2, 2] * wz
        return bx, by, bz

    def structure_sdf(self, s: Structure) -> tuple[tuple[slice, slice, slice], np.ndarray] | None:
        """Union SDF of a structure over its block (clipped to +-8 mm), or ``None`` outside the grid."""
        lo, hi = s.bbox()
        block = self.block_of(lo, hi)
        if block is None:
            return None
        shape = tuple(b.stop - b.start for b in block)
        big = np.float32(8.0)
        out = np.full(shape, big, dtype=np.float32)
        for prim in s.primitives:
            plo, phi = prim.bbox()
            pb = self.block_of(plo, phi)
            if pb is None:
                continue
            inter = tuple(
                slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(pb, block, strict=True)
            )
            if any(sl.stop <= sl.start for sl in inter):
                continue
            x, y, z = self.body_coords(inter)
            d = prim.sdf(*np.broadcast_arrays(x, y, z))
            local = tuple(
                slice(sl.start - b.start, sl.stop - b.start) for sl, b in zip(inter, block, strict=True)
            )
            np.minimum(out[local], d, out=out[local])
        if s.subtract:
            x, y, z = np.broadcast_arrays(*self.body_coords(block))
            for sub in s.subtract:
                slo, shi = sub.bbox()
                sb = self.block_of(slo, shi)
                if sb is None:
                    continue
                inter = tuple(
                    slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(sb, block, strict=True)
                )
                if any(sl.stop <= sl.start for sl in inter):
                    continue
                local = tuple(
                    slice(sl.start - b.start, sl.stop - b.start) for sl, b in zip(inter, block, strict=True)
                )
                d = sub.sdf(x[local], y[local], z[local])
                np.maximum(out[local], -d, out=out[local])
        np.clip(out, -big, big, out=out)
        return block, out


def _occupancy(sdf: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Partial-volume coverage of each voxel and the voxel width across the surface (both float32)."""
    norm = float(np.linalg.norm(spacing))
    w = np.zeros_like(sdf)
    for ax in range(3):
        if sdf.shape[ax] > 1:
            w += np.abs(np.gradient(sdf, axis=ax))
    np.clip(w, 0.3 * float(spacing.min()), norm, out=w)
    return np.clip(0.5 - sdf / w, 0.0, 1.0), w


def _texture(shape: tuple[int, ...], spacing: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth zero-mean, unit-SD random field (correlation length about 1.2 mm)."""
    field_ = rng.standard_normal(shape, dtype=np.float32)
    sigma = [max(1.2 / float(s), 0.3) for s in spacing[::-1]]
    gaussian_filter(field_, sigma=sigma, output=field_, mode="nearest")
    sd = float(field_.std())
    return field_ / sd if sd > 0 else field_


def _tissue_hu(params: PhantomParams, tissue: str) -> float:
    hu = params.hu
    return {
        "skin": hu.skin,
        "fat": hu.fat,
        "soft": hu.soft,
        "muscle": hu.muscle,
        "vessel": hu.vessel,
        "bone": hu.cortical,
        "disc": hu.disc,
        "nerve": hu.nerve,
        "csf": hu.csf,
    }[tissue]


def render(anatomy: Anatomy, seed: int, progress: bool | None = None) -> tuple[sitk.Image, sitk.Image]:
    """CT (HU) and label images of ``anatomy`` on its field of view."""
    params = anatomy.params
    grid = _make_grid(anatomy)
    ras = _Rasteriser(anatomy, grid)
    shape = (int(grid.size[2]), int(grid.size[1]), int(grid.size[0]))
    rng = np.random.default_rng([int(seed), 0xC7])
    texture = _texture(shape, grid.spacing, rng)
    hu = np.full(shape, params.hu.air, dtype=np.float32)
    labels = np.zeros(shape, dtype=np.uint8)
    spacing_zyx = grid.spacing[::-1]
    for s in track(
        anatomy.structures, desc="phantom structures", disable=None if progress is None else not progress
    ):
        res = ras.structure_sdf(s)
        if res is None:
            continue
        block, sdf = res
        occ, w = _occupancy(sdf, spacing_zyx)
        tex = texture[block]
        target = hu[block]
        value = _tissue_hu(params, s.tissue) + _TEXTURE[s.tissue] * (0.3 if s.tissue == "bone" else 1.0) * tex
        target += occ * (value - target)
        if s.tissue == "bone":  # cancellous interior under a cortical shell
            inner = np.clip(0.5 - (sdf + _CORTEX_MM) / w, 0.0, 1.0)
            cancellous = params.hu.cancellous + _TEXTURE["bone"] * tex
            target += inner * (cancellous - target)
        hu[block] = target
        if s.label:
            lab = labels[block]
            lab[sdf < 0] = s.label
            labels[block] = lab
    if params.blur_mm > 0:
        sigma = [float(params.blur_mm) / float(s) for s in spacing_zyx]
        sigma = [sg if sg >= 0.15 else 0.0 for sg in sigma]
        if any(sigma):
            gaussian_filter(hu, sigma=sigma, output=hu, mode="nearest")
    if params.noise_hu > 0:
        hu += np.float32(params.noise_hu) * rng.standard_normal(shape, dtype=np.float32)
    if params.dtype == "int16":
        img_arr: np.ndarray = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    else:
        img_arr = hu
    image = sitk.GetImageFromArray(img_arr)
    lab_img = sitk.GetImageFromArray(labels)
    for im in (image, lab_img):
        im.SetSpacing(tuple(float(v) for v in grid.spacing))
        im.SetOrigin(tuple(float(v) for v in grid.origin))
        im.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return image, lab_img


def _inside(image: sitk.Image, pts: np.ndarray) -> bool:
    lo = np.asarray(image.GetOrigin()) - 0.5 * np.asarray(image.GetSpacing())
    hi = lo + np.asarray(image.GetSize()) * np.asarray(image.GetSpacing())
    p = np.asarray(pts, dtype=float).reshape(-1, 3)
    return bool(np.all((p >= lo) & (p <= hi)))


def build_truth(
    anatomy: Anatomy, image: sitk.Image, labels: sitk.Image, seed: int, with_visibility: bool = True
) -> dict[str, Any]:
    """The truth dictionary of a rendered case (everything in world LPS, mm)."""
    params = anatomy.params
    counts = np.bincount(sitk.GetArrayViewFromImage(labels).ravel(), minlength=256)
    voxel_mm3 = float(np.prod(image.GetSpacing()))
    present = {BY_LABEL[v].name: int(counts[v]) for v in np.nonzero(counts)[0] if v != 0}
    vertebrae = [lv for lv in params.levels if lv in present]
    triangles = all_triangles(anatomy, with_visibility=with_visibility)
    for sides in triangles.values():
        for kinds in sides.values():
            for tri in kinds.values():
                tri["in_field_of_view"] = _inside(image, np.asarray(tri["vertices_lps_mm"]))
    pathology = [
        dict(
            kind="disc_herniation",
            level=h.level,
            side=h.side,
            size_mm=h.size_mm,
            compressed_root=f"root_{h.level.split('-')[1]}_{h.side}",
            description="posterolateral protrusion displacing and compressing the traversing root",
        )
        for h in params.herniations
    ]
    pathology += [
        dict(
            kind="foraminal_stenosis",
            level=s.level,
            side=s.side,
            severity=s.severity,
            compressed_root=f"root_{s.level.split('-')[0]}_{s.side}",
            description="reduced foraminal height and width; exiting root pressed against the pedicle",
        )
        for s in params.stenoses
    ]
    r = anatomy.rotation
    return dict(
        format="spineai-phantom-ct-truth",
        version=1,
        generator=f"spineai {__version__}",
        seed=int(seed),
        frame="LPS",
        units="mm",
        image=dict(
            size=list(image.GetSize()),
            spacing_mm=list(image.GetSpacing()),
            origin_lps_mm=list(image.GetOrigin()),
            direction=list(image.GetDirection()),
            pixel_type=image.GetPixelIDTypeAsString(),
        ),
        spacing_mm=list(image.GetSpacing()),
        pose=dict(
            rotation_deg=list(params.pose_rotation_deg),
            rotation_matrix=np.round(r, 8).tolist(),
            translation_mm=list(params.pose_translation_mm),
            body_frame_fov_center_mm=np.round(anatomy.fov_center_body, 4).tolist(),
            convention="p_lps = rotation_matrix @ (p_body - body_frame_fov_center_mm) + translation_mm; "
            "rotation_matrix = Rz(rz) @ Ry(ry) @ Rx(rx); body frame: patient-aligned LPS axes with "
            "origin at the centre of the S1 superior endplate",
        ),
        structures=list(present),
        structure_voxels=present,
        structure_volumes_ml={k: round(v * voxel_mm3 / 1000.0, 3) for k, v in present.items()},
        label_values={name: BY_NAME[name].label for name in present},
        levels_modelled=list(params.levels),
        levels_in_view=vertebrae,
        lumbar_levels=list(params.lumbar_levels),
        exiting_and_traversing_roots={
            level: dict(
                exiting=f"root_{level.split('-')[0]}_<side>", traversing=f"root_{level.split('-')[1]}_<side>"
            )
            for level in params.disc_levels
        },
        landmarks=landmarks(anatomy),
        morphometry=dict(foramina=morphometry(anatomy)),
        level_truth=level_truth(anatomy, present),
        triangles=triangles,
        pathology=pathology,
        hu=dict(vars(params.hu)),
        params=params.to_dict(),
        notes=list(anatomy.notes),
        sides=list(SIDES),
    )


def _tp_height(anatomy: Anatomy, name: str, side: str) -> float:
    """Extent (mm) along a vertebra's axis of its transverse process on ``side`` (wing included)."""
    v = anatomy.vertebrae[name]
    parts = [p for p in v.parts if p.part in (f"{name}:transverse_process_{side}", f"{name}:tp_wing_{side}")]
    if not parts:
        return 0.0
    a = v.axis
    return float(max(p.support(a) for p in parts) + max(p.support(-a) for p in parts))


def level_truth(anatomy: Anatomy, present: dict[str, int]) -> dict[str, Any]:
    """What each vertebra is, the last rib-bearing vertebra and the transitional anatomy (LPS, mm).

    ``vertebrae[name]``: ``canonical_label``, ``verse_label`` (VerSe convention: L6 = 25, sacrum = 26),
    ``identity`` (the vertebra's anatomical identity: ``"S1 (lumbarised)"`` for the lumbarised first sacral
    segment, labelled ``L6``), ``in_view``, ``voxels``, ``rib_bearing``. ``transitional``: ``kind``
    (``None``, ``"castellvi"``, ``"six_lumbar_vertebrae"``, ``"lumbarised_S1"``), ``vertebra``,
    ``castellvi`` per side (``"0"``, ``"I"``, ``"II"``, ``"III"``), ``castellvi_type`` (``"0"``, ``"Ia"`` ...
    ``"IV"``), ``tp_height_mm`` per side (extent of the transverse process along the vertebra's axis),
    ``gap_mm`` per transitional side (smallest distance between the process and the sacrum; negative:
    fused), ``joint_point_lps`` per side.
    """
    from ..anatomy import VERSE
    from .params import castellvi_type

    params = anatomy.params
    verse = {name: value for value, name in VERSE.values.items()}
    tr = params.transitional
    lumbarised = bool(tr is not None and tr.lumbarised_s1)
    vertebrae: dict[str, Any] = {}
    for lv in params.levels:
        identity = lv
        if lumbarised and lv == params.lumbar_levels[-1]:
            identity = "S1 (lumbarised)"
        elif lumbarised and lv == "S1":
            identity = "sacrum from S2 (S1 is lumbarised)"
        elif lv == "S1":
            identity = "sacrum"
        vertebrae[lv] = dict(
            canonical_label=BY_NAME[lv].label,
            verse_label=verse.get(lv),
            identity=identity,
            in_view=lv in present,
            voxels=int(present.get(lv, 0)),
            rib_bearing=lv in params.thoracic_levels,
        )
    lowest = params.lumbar_levels[-1]
    sides = dict(tr.castellvi) if tr is not None else {}
    kind = None
    if sides:
        kind = "castellvi"
    elif lumbarised:
        kind = "lumbarised_S1"
    elif lowest == "L6":
        kind = "six_lumbar_vertebrae"
    built = anatomy.transitional.get("sides", {})
    transitional = dict(
        kind=kind,
        vertebra=lowest,
        castellvi={side: sides.get(side, "0") for side in SIDES},
        castellvi_type=castellvi_type(sides),
        tp_height_mm={side: round(_tp_height(anatomy, lowest, side), 3) for side in SIDES},
        gap_mm={side: round(float(info["gap_mm"]), 3) for side, info in built.items()},
        joint_point_lps={
            side: np.round(anatomy.to_world(np.asarray(info["joint_point_body"])), 3).tolist()
            for side, info in built.items()
        },
    )
    rib = [lv for lv in params.thoracic_levels if lv in present]
    return dict(
        convention="canonical names; a sixth lumbar-type vertebra is L6 (VerSe 25), the sacrum S1 (VerSe 26)",
        vertebrae=vertebrae,
        lumbar_count=len(params.lumbar_levels),
        last_rib_bearing=rib[-1] if rib else None,
        transitional=transitional,
    )


def generate_ct_phantom(
    seed: int = 0, params: PhantomParams | None = None, *, progress: bool | None = None, **overrides: Any
) -> PhantomCase:
    """Generate one synthetic lumbosacral CT case with exact labels and ground-truth triangles.

    Args:
        seed: seed of the parameter sampling (when ``params`` is None) and of the image noise.
        params: explicit parameters; ``overrides`` are applied on top of them.
        variant: (in ``overrides``) a named anatomical variant (:data:`spineai.phantom.params.VARIANTS`:
            ``"whole_lumbar"``, ``"L6"``, ``"lumbarised_S1"``, ``"castellvi_IIa"`` ...), sampled from ``seed``;
            combine with ``fov_levels`` for a lumbar-only field of view.
        progress: show a progress bar (default: when stderr is a terminal).
        **overrides: :class:`PhantomParams` fields, e.g. ``spacing_mm=(0.7, 0.7, 3)``,
            ``iliac_crest_height_mm=50``, ``pose_rotation_deg=(0, 0, 0)``.

    Returns:
        a :class:`PhantomCase`; the same arguments always give bit-identical images.
    """
    if params is None:
        params = sample_params(seed, **overrides)
    elif overrides:
        params = params.replace(**overrides)
    anatomy = build_anatomy(params)
    image, labels = render(anatomy, seed, progress=progress)
    truth = build_truth(anatomy, image, labels, seed)
    return PhantomCase(
        image=image, labels=labels, truth=truth, seed=int(seed), params=params, anatomy=anatomy
    )


def write_phantom_case(
    case: PhantomCase, folder: str | os.PathLike, overwrite: bool = False
) -> dict[str, Path]:
    """Write a case into ``folder`` (new or empty unless ``overwrite``).

    Files: ``ct.nii.gz`` (HU), ``labels.nii.gz`` + ``labels.json`` (canonical mapping sidecar),
    ``labels.seg.nrrd`` (3D Slicer segmentation with named, coloured segments) and ``truth.json``.

    Returns:
        ``{"ct", "labels", "labels_sidecar", "segmentation", "truth"}`` -> path.
    """
    from .. import io

    out = prepare_output_dir(folder, overwrite=overwrite)
    paths = {
        "ct": out / "ct.nii.gz",
        "labels": out / "labels.nii.gz",
        "segmentation": out / "labels.seg.nrrd",
        "truth": out / "truth.json",
    }
    labelmap = io.LabelMap(case.labels, CANONICAL)
    io.write_image(case.image, paths["ct"], overwrite=overwrite)
    lab_path, side_path = io.write_labelmap_nifti(labelmap, paths["labels"], overwrite=overwrite)
    io.write_seg_nrrd(
        labelmap, paths["segmentation"], overwrite=overwrite, reference=case.image, keep_empty=False
    )
    write_json(paths["truth"], case.truth, overwrite=overwrite)
    return {
        "ct": paths["ct"],
        "labels": Path(lab_path),
        "labels_sidecar": Path(side_path),
        "segmentation": paths["segmentation"],
        "truth": paths["truth"],
    }
