"""3D rendering of bones, roots, triangles and needle paths to a PNG.

Surfaces come from :func:`spineai.segmentation.surfaces.mask_surface` (the paper's 1.5 mm median
smoothing, flying edges, windowed-sinc smoothing) and are drawn with VTK off screen (EGL/OSMesa; no
display needed). The camera looks at the measured foramina from behind and above, like Fig 6 of Fan et
al. 2019. If VTK cannot render off screen, the picture is drawn with matplotlib's 3D axes instead (and
says so in its title).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..anatomy import BY_NAME, disc_name
from ..outputs import atomic_path
from .triangles import TriangleMeasurements

_COLOURS = {"kambin": (0.2, 0.8, 0.3), "safe": (0.2, 0.55, 1.0), "needle": (1.0, 0.25, 0.2)}


def _structures(result: TriangleMeasurements) -> list[str]:
    names: list[str] = []
    for fm in result.measured:
        p = fm.parts
        assert p is not None
        for n in (p.upper, p.lower, disc_name(p.upper, p.lower), p.exiting_root, p.traversing_root):
            if n not in names:
                names.append(n)
    for n in ("ilium_left", "ilium_right", "dural_sac"):
        if result.volume.count(n) and n not in names:
            names.append(n)
    return [n for n in names if result.volume.count(n)]


def _crop(result: TriangleMeasurements, names: list[str], margin_mm: float = 15.0) -> sitk.Image:
    vol = result.volume
    pts = np.vstack([vol.points(n) for n in names if not n.startswith("ilium")] or [vol.points(names[0])])
    idx_lo = np.floor(vol.to_index(pts.min(0) - margin_mm)).astype(int)
    idx_hi = np.ceil(vol.to_index(pts.max(0) + margin_mm)).astype(int)
    lo = np.clip(np.minimum(idx_lo, idx_hi), 0, vol.shape_xyz - 1)
    hi = np.clip(np.maximum(idx_lo, idx_hi), 0, vol.shape_xyz - 1)
    return sitk.RegionOfInterest(vol.image, [int(x) for x in (hi - lo + 1)], [int(x) for x in lo])


def _camera(result: TriangleMeasurements) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Focal point, camera position and view-up (LPS)."""
    centres = [fm.parts.exiting.midpoint for fm in result.measured if fm.parts is not None]
    focal = np.mean(centres, axis=0) if centres else result.volume.origin
    axis = np.mean([fm.parts.axis for fm in result.measured], axis=0)
    post = np.mean([fm.parts.posterior for fm in result.measured], axis=0)
    direction = post / np.linalg.norm(post) * 0.85 + axis / np.linalg.norm(axis) * 0.35
    position = focal + 260.0 * direction / np.linalg.norm(direction)
    return focal, position, axis / np.linalg.norm(axis)


def render_case_png(
    result: TriangleMeasurements,
    path: str | os.PathLike,
    overwrite: bool = False,
    size: tuple[int, int] = (1000, 800),
) -> tuple[Path, str]:
    """Render bones, roots, the measured triangles (reference view) and the needle paths to ``path``.

    Returns:
        ``(path, renderer)`` with ``renderer`` ``"vtk"`` or ``"matplotlib"`` (fallback).
    """
    names = _structures(result)
    try:
        _render_vtk(result, names, path, overwrite, size)
        return Path(path), "vtk"
    except Exception as exc:  # noqa: BLE001 - any failure of the GPU-less VTK path falls back to matplotlib
        _render_matplotlib(result, names, path, overwrite, note=f"matplotlib (VTK off-screen failed: {exc})")
        return Path(path), "matplotlib"


def _render_vtk(
    result: TriangleMeasurements,
    names: list[str],
    path: str | os.PathLike,
    overwrite: bool,
    size: tuple[int, int],
) -> None:
    import vtk
    from vtk.util.numpy_support import vtk_to_numpy

    from ..segmentation.surfaces import mask_surface

    vtk.vtkObject.GlobalWarningDisplayOff()
    if hasattr(vtk, "vtkLogger"):
        vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    crop = _crop(result, names)
    ren = vtk.vtkRenderer()
    ren.SetBackground(1.0, 1.0, 1.0)
    for n in names:
        mask = sitk.Equal(crop, BY_NAME[n].label)
        poly = mask_surface(mask)
        if poly is None or poly.GetNumberOfPoints() == 0:
            continue
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputData(poly)
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        rgb = np.asarray(BY_NAME[n].rgb) / 255.0
        actor.GetProperty().SetColor(*rgb)
        kind = BY_NAME[n].kind
        actor.GetProperty().SetOpacity(
            0.35 if kind in ("vertebra", "sacrum", "ilium") else 0.5 if kind in ("disc", "dural_sac") else 1.0
        )
        ren.AddActor(actor)
    for fm in result.measured:
        for kind, tri in fm.triangles.items():
            if tri.degenerate:
                continue
            pts = vtk.vtkPoints()
            for p in tri.vertices_lps_mm:
                pts.InsertNextPoint(*[float(x) for x in p])
            poly = vtk.vtkPolygon()
            poly.GetPointIds().SetNumberOfIds(3)
            for i in range(3):
                poly.GetPointIds().SetId(i, i)
            cells = vtk.vtkCellArray()
            cells.InsertNextCell(poly)
            pd = vtk.vtkPolyData()
            pd.SetPoints(pts)
            pd.SetPolys(cells)
            m = vtk.vtkPolyDataMapper()
            m.SetInputData(pd)
            a = vtk.vtkActor()
            a.SetMapper(m)
            a.GetProperty().SetColor(*_COLOURS[kind])
            a.GetProperty().SetOpacity(0.9)
            a.GetProperty().LightingOff()
            ren.AddActor(a)
        for kind, p in fm.paths.items():
            line = vtk.vtkLineSource()
            line.SetPoint1(*[float(x) for x in p.entry_lps])
            line.SetPoint2(*[float(x) for x in p.target_lps])
            tube = vtk.vtkTubeFilter()
            tube.SetInputConnection(line.GetOutputPort())
            tube.SetRadius(0.45)
            tube.SetNumberOfSides(12)
            m = vtk.vtkPolyDataMapper()
            m.SetInputConnection(tube.GetOutputPort())
            a = vtk.vtkActor()
            a.SetMapper(m)
            a.GetProperty().SetColor(*(_COLOURS["needle"] if fm.recommended == kind else (0.6, 0.6, 0.6)))
            ren.AddActor(a)
    focal, position, view_up = _camera(result)
    cam = ren.GetActiveCamera()
    cam.SetFocalPoint(*focal)
    cam.SetPosition(*position)
    cam.SetViewUp(*view_up)
    cam.SetViewAngle(30.0)
    ren.ResetCameraClippingRange()
    win = vtk.vtkRenderWindow()
    win.SetOffScreenRendering(1)
    win.AddRenderer(ren)
    win.SetSize(*size)
    win.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(win)
    grab.ReadFrontBufferOff()
    grab.Update()
    image = grab.GetOutput()
    w, h, _ = image.GetDimensions()
    rgb = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
    win.Finalize()
    if rgb.size == 0 or int(rgb.max()) == int(rgb.min()):
        raise RuntimeError("the off-screen render is blank")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_path(path, overwrite=overwrite) as tmp:
        plt.imsave(tmp, np.ascontiguousarray(rgb), format="png")


def _render_matplotlib(
    result: TriangleMeasurements, names: list[str], path: str | os.PathLike, overwrite: bool, note: str
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from skimage.measure import marching_cubes

    vol = result.volume
    crop = _crop(result, names)
    arr = sitk.GetArrayViewFromImage(crop)
    m = np.asarray(crop.GetDirection()).reshape(3, 3) @ np.diag(crop.GetSpacing())
    origin = np.asarray(crop.GetOrigin())
    fig = plt.figure(figsize=(9, 7), dpi=100)
    ax = fig.add_subplot(111, projection="3d")
    for n in names:
        mask = np.asarray(arr == BY_NAME[n].label, dtype=np.float32)
        if mask.sum() < 10:
            continue
        verts, faces, _, _ = marching_cubes(np.pad(mask, 1), 0.5, step_size=2)
        verts = verts - 1.0
        lps = origin + verts[:, ::-1] @ m.T
        rgb = np.asarray(BY_NAME[n].rgb) / 255.0
        coll = Poly3DCollection(
            lps[faces], alpha=0.25 if BY_NAME[n].kind in ("vertebra", "sacrum", "ilium") else 0.8
        )
        coll.set_facecolor(rgb)
        ax.add_collection3d(coll)
    for fm in result.measured:
        for kind, tri in fm.triangles.items():
            if not tri.degenerate:
                ax.add_collection3d(Poly3DCollection([tri.vertices_lps_mm], color=_COLOURS[kind], alpha=0.9))
        for _kind, p in fm.paths.items():
            ax.plot(*np.vstack([p.entry_lps, p.target_lps]).T, color=_COLOURS["needle"], lw=2)
    lo, hi = vol.bounds_lps()
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
    ax.set_xlabel("x (patient left), mm")
    ax.set_ylabel("y (posterior), mm")
    ax.set_zlabel("z (superior), mm")
    ax.set_title(note, fontsize=8)
    with atomic_path(path, overwrite=overwrite) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
