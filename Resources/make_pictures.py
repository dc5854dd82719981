"""Draw the SpineAI extension's icons and render its screenshot (run from the repository root).

    .venv/bin/python Resources/make_pictures.py            # icons (128x128 PNG, drawn with matplotlib)
    .venv/bin/python Resources/make_pictures.py --screenshot

Icons are drawn from simple anatomical shapes (a sagittal lumbosacral column with a nerve root and Kambin's
triangle; an axial vertebra with its nerve roots; graded discs). The screenshot is a real rendering: the
engine's synthetic phantom CT with its canonical labels as orthogonal slices (``spineai.pictures``), and
the smoothed 3D surfaces of the structures.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse, FancyBboxPatch, Polygon, Rectangle  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BONE = "#e8cf9a"
BONE_EDGE = "#8a6a3a"
DISC = "#5a84d0"
ROOT = "#ffc21e"
TRIANGLE = "#3ec46d"
BACKGROUND = "#1d2433"


def _canvas():
    fig = plt.figure(figsize=(1.28, 1.28), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 128)
    ax.set_ylim(0, 128)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.add_patch(
        FancyBboxPatch((3, 3), 122, 122, boxstyle="round,pad=0,rounding_size=18", fc=BACKGROUND, ec="none")
    )
    return fig, ax


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, transparent=True)
    plt.close(fig)
    print(f"wrote {path.relative_to(REPO)}")


def _sagittal_column(ax) -> None:
    """Lumbar bodies L3-L5 and the sacrum (anterior on the left), discs between them."""
    for i, y in enumerate((92, 68, 44)):
        ax.add_patch(
            FancyBboxPatch(
                (22, y), 40, 17, boxstyle="round,pad=0,rounding_size=5", fc=BONE, ec=BONE_EDGE, lw=1.2
            )
        )
        ax.add_patch(
            Polygon(
                [(62, y + 14), (80, y + 12), (84, y + 4), (62, y + 3)],
                closed=True,
                fc=BONE,
                ec=BONE_EDGE,
                lw=1.0,
            )
        )
        if i < 3:
            ax.add_patch(
                FancyBboxPatch((24, y - 6), 36, 5, boxstyle="round,pad=0,rounding_size=2", fc=DISC, ec="none")
            )
    ax.add_patch(
        Polygon([(24, 37), (64, 37), (76, 26), (58, 8), (36, 10)], closed=True, fc=BONE, ec=BONE_EDGE, lw=1.2)
    )


def icon_hub(path: Path) -> None:
    fig, ax = _canvas()
    _sagittal_column(ax)
    # exiting L5 root curving anteriorly and caudally below the L5 pedicle, Kambin's triangle above S1
    t = np.linspace(0, 1, 40)
    ax.plot(74 - 30 * t, 50 - 24 * t**1.4, color=ROOT, lw=4, solid_capstyle="round")
    ax.add_patch(
        Polygon([(63, 37), (72, 44), (63, 47)], closed=True, fc=TRIANGLE, ec="white", lw=1.0, alpha=0.95)
    )
    ax.plot([112, 70], [112, 43], color="#e6e6e6", lw=2.2)  # needle path to the triangle
    ax.add_patch(Ellipse((112, 112), 7, 7, fc="#e6e6e6", ec="none"))
    _save(fig, path)


def icon_segmentation(path: Path) -> None:
    fig, ax = _canvas()
    ax.add_patch(Rectangle((12, 12), 104, 104, fc="#2b2b2b", ec="none"))
    ax.add_patch(Ellipse((64, 80), 52, 36, fc=BONE, ec=BONE_EDGE, lw=1.5))  # vertebral body (anterior up)
    ax.add_patch(Ellipse((64, 50), 24, 16, fc="#6fd19a", ec="none"))  # dural sac
    arch = [
        (44, 62),
        (36, 46),
        (46, 30),
        (64, 22),
        (82, 30),
        (92, 46),
        (84, 62),
        (76, 58),
        (80, 44),
        (64, 34),
        (48, 44),
        (52, 58),
    ]
    ax.add_patch(Polygon(arch, closed=True, fc="#d8a878", ec=BONE_EDGE, lw=1.2))
    ax.add_patch(
        Polygon([(58, 26), (70, 26), (66, 10), (62, 10)], closed=True, fc="#c9906a", ec=BONE_EDGE, lw=1.0)
    )
    for side in (-1, 1):
        ax.add_patch(Ellipse((64 + side * 34, 62), 12, 9, fc=ROOT, ec="#a07000", lw=1.0))
    _save(fig, path)


def icon_grading(path: Path) -> None:
    fig, ax = _canvas()
    ax.add_patch(Rectangle((12, 12), 60, 104, fc="#262626", ec="none"))
    greys = ("#c8c8c8", "#a0a0a0", "#7a7a7a", "#505050")
    for i, y in enumerate((96, 72, 48, 24)):
        ax.add_patch(
            FancyBboxPatch((20, y), 44, 14, boxstyle="round,pad=0,rounding_size=4", fc="#b0b0b0", ec="none")
        )
        ax.add_patch(Ellipse((42, y - 5), 38, 7, fc=greys[i], ec="none"))
    grade_colours = ("#3ec46d", "#c8d43a", "#f29a2e", "#e0453a")
    for y, grade in zip((91, 67, 43, 19), (0, 1, 2, 3), strict=True):
        ax.add_patch(Rectangle((78, y - 2), 8 + 7 * grade, 8, fc=grade_colours[grade], ec="none"))
        ax.text(78 + 8 + 7 * grade + 2, y + 2, str(grade), color="white", fontsize=7, va="center")
    _save(fig, path)


def _surface_render(labels, size=(640, 560)) -> np.ndarray:
    """RGB array of the phantom's structures as smoothed 3D surfaces (VTK, offscreen), seen from the
    patient's left-posterior oblique, in the anatomy table's colours."""
    import SimpleITK as sitk
    import vtk
    from vtk.util import numpy_support

    from spineai import anatomy

    lps = sitk.DICOMOrient(labels, "LPS")
    arr = sitk.GetArrayFromImage(lps).astype(np.uint8)
    image = vtk.vtkImageData()
    image.SetDimensions(arr.shape[2], arr.shape[1], arr.shape[0])
    image.SetSpacing(lps.GetSpacing())
    image.SetOrigin(lps.GetOrigin())
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(arr.ravel(), deep=True))
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0.11, 0.14, 0.2)
    for value in sorted(set(np.unique(arr).tolist()) - {0}):
        s = anatomy.BY_LABEL[value]
        iso = vtk.vtkDiscreteFlyingEdges3D()
        iso.SetInputData(image)
        iso.SetValue(0, value)
        smooth = vtk.vtkWindowedSincPolyDataFilter()
        smooth.SetInputConnection(iso.GetOutputPort())
        smooth.SetNumberOfIterations(20)
        smooth.SetPassBand(0.05)
        smooth.NormalizeCoordinatesOn()
        normals = vtk.vtkPolyDataNormals()
        normals.SetInputConnection(smooth.GetOutputPort())
        mapper = vtk.vtkPolyDataMapper()
        mapper.SetInputConnection(normals.GetOutputPort())
        mapper.ScalarVisibilityOff()
        actor = vtk.vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*(c / 255.0 for c in s.rgb))
        if s.kind in ("dural_sac", "ilium"):
            actor.GetProperty().SetOpacity(0.35)
        renderer.AddActor(actor)
    camera = renderer.GetActiveCamera()
    renderer.ResetCamera()
    focal = np.array(camera.GetFocalPoint())
    distance = camera.GetDistance()
    direction = np.array([0.6, 0.75, 0.1])  # patient's left (+x) and posterior (+y) in LPS
    camera.SetPosition(*(focal + distance * direction / np.linalg.norm(direction)))
    camera.SetViewUp(0, 0, 1)  # superior up
    renderer.ResetCamera()
    camera.Zoom(1.25)
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.AddRenderer(renderer)
    window.SetSize(*size)
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.Update()
    out = grab.GetOutput()
    w, h, _ = out.GetDimensions()
    rgb = numpy_support.vtk_to_numpy(out.GetPointData().GetScalars()).reshape(h, w, -1)[::-1, :, :3]
    return np.ascontiguousarray(rgb)


def screenshot(path: Path, seed: int = 7) -> None:
    """Orthogonal slices of the engine phantom with its canonical labels, beside its 3D surfaces."""
    from PIL import Image

    from spineai import phantom, pictures

    case = phantom.generate_ct_phantom(seed)
    with tempfile.TemporaryDirectory() as tmp:
        slices = Path(tmp) / "slices.png"
        pictures.orthogonal_slices_png(
            case.image, slices, labels=case.labels, title=f"SpineAI phantom {seed}: CT with canonical labels"
        )
        left = Image.open(slices).convert("RGB")
    right = Image.fromarray(_surface_render(case.labels, size=(left.height, left.height)))
    canvas = Image.new("RGB", (left.width + right.width, left.height), (255, 255, 255))
    canvas.paste(left, (0, 0))
    canvas.paste(right, (left.width, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    print(f"wrote {path.relative_to(REPO)}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--screenshot", action="store_true", help="also render the screenshot (needs the engine phantom)"
    )
    args = parser.parse_args()
    icon_hub(REPO / "SpineAI" / "Resources" / "Icons" / "SpineAI.png")
    icon_hub(REPO / "Resources" / "SpineAI.png")
    icon_segmentation(REPO / "SpineAISegmentation" / "Resources" / "Icons" / "SpineAISegmentation.png")
    icon_grading(REPO / "SpineAIGrading" / "Resources" / "Icons" / "SpineAIGrading.png")
    if args.screenshot:
        screenshot(REPO / "Resources" / "Screenshots" / "SpineAISegmentation.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
