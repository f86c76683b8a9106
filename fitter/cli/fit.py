"""`fitter fit PATH...`: fit body models to photos (files and folders)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fitter.cli.common import console, fail, quiet_third_party, require_device, say

EXAMPLES = """Examples:

  fitter fit photo.jpg

  fitter fit photos/ --recursive --out results/ --batch-size 16

  fitter fit photo.jpg --keypoints photo_keypoints.json --no-silhouette

  fitter fit photos/ --body-model smpl --gender female --focal 1500 --config accurate

  fitter fit /shared/photos --recursive --out /shared/results --backend ray --address HEAD_IP:6379
"""


def parse_detect_passes(text: str) -> tuple[str, ...]:
    """--detect-passes "refine,tiles" -> ("refine", "tiles"); "none" or "" -> () (names checked by check_options)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    return () if names == ["none"] else tuple(names)


def fit_command(
    paths: list[Path] = typer.Argument(..., help="Images and/or folders of images."),
    out: Path = typer.Option(Path("fitter_out"), "--out", "-o", help="Output folder."),
    init: str = typer.Option(
        "best",
        help="Initializer: best (a regressor whose checkpoint is found, else lifter), "
        "mediapipe (IK on its 3D landmarks, free), lifter (fitter's 2D keypoint lifter, free), cliff, pare, hmr, nbf, "
        "or upright (SMPLify's upright mean pose; 'none' also works).",
    ),
    refine: str = typer.Option(
        "none", help="eft: fine-tune the regressor on each person's keypoints first (regressor inits)."
    ),
    body_model: str = typer.Option("anny", help="anny (free default), smpl, smplh, smplx, or a model file."),
    gender: str = typer.Option("neutral", help="neutral, male or female."),
    focal: float = typer.Option(None, help="Focal length in pixels (default: EXIF, else the image diagonal)."),
    keypoints: Path = typer.Option(
        None, help="Keypoint file or folder (OpenPose JSON, COCO JSON, fitter npz/json) instead of mediapipe."
    ),
    silhouette: bool = typer.Option(
        True, "--silhouette/--no-silhouette", help="Use the person mask (mediapipe) in a final stage."
    ),
    parts: Path = typer.Option(
        None, help="Body-part label PNG (or folder of <stem>.png) with parts.json beside it (see README)."
    ),
    config: str = typer.Option(
        "default", help="fast, default, accurate, or smplify (SMPLify's 4 annealed stages from an upright start)."
    ),
    device: str = typer.Option("cpu", help="cpu or cuda (cuda:N)."),
    batch_size: int = typer.Option(8, min=1, help="People fitted together in one batch."),
    max_people: int = typer.Option(6, help="People fitted per photo at most (largest first; the others are listed)."),
    detection_confidence: float = typer.Option(
        0.1, help="mediapipe's person detection threshold in (0, 1); higher finds fewer people."
    ),
    detect_passes: str = typer.Option(
        "refine",
        help="Detection passes after the first, comma-separated: refine (each person again on their own crop), "
        "hide (again with the people found painted over), tiles (2x2 overlapping tiles: small people); or none.",
    ),
    overwrite: bool = typer.Option(False, help="Refit images whose outputs exist (default: skip them)."),
    recursive: bool = typer.Option(False, help="Search folders recursively."),
    side_view: bool = typer.Option(False, help="Also write <stem>_side.png."),
    gmm: Path = typer.Option(
        None, help="GMM pose prior file (SMPLify gmm_08.pkl layout or npz) [default: the shipped CMU GMM]."
    ),
    auto_parts: bool = typer.Option(
        False,
        "--auto-parts/--no-auto-parts",
        help="Without --parts: split the person mask into 12 parts by the 2D skeleton (nearest bone).",
    ),
    threads: int = typer.Option(
        1, min=1, help="CPU threads for torch (1 is fastest for these small ops on a busy or 2-core CPU)."
    ),
    backend: str = typer.Option(
        "local", help="local, or ray (pip install 'fitter[ray]') to spread over a Ray cluster."
    ),
    address: str = typer.Option(
        None, help="Ray cluster address (HEAD_IP:6379); default: $RAY_ADDRESS, a local `ray start`, or a new local Ray."
    ),
    overlay_size: int = typer.Option(
        2048, help="Longest side (px) of the overlay and side-view pictures; 0: the photo's size."
    ),
    hands: bool = typer.Option(
        None,
        "--hands/--no-hands",
        help="Detect hands and face (mediapipe Holistic) and fit the fingers; needs a body model with finger joints "
        "(the default anny becomes anny-hands) [default: on when the body model has finger joints].",
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Also show the libraries' own log lines (mediapipe, warp)."),
    landmarks3d: bool = typer.Option(
        None,
        "--landmarks3d/--no-landmarks3d",
        help="Also pull the body towards mediapipe's 3D world landmarks (after a similarity alignment) "
        "[default: on with --init mediapipe, else off].",
    ),
) -> None:
    """Fit a body model to every person in the given photos; write .npz/.json/.obj/_overlay.png."""
    from fitter.fitting import PRESETS
    from fitter.init import INITIALIZER_NAMES, resolve_initializer_name
    from fitter.io.images import list_images
    from fitter.pipeline import FitOptions, check_options

    if backend not in ("local", "ray"):
        fail(f"--backend must be local or ray, not {backend!r}")
    if address is not None and backend != "ray":
        fail("--address needs --backend ray")
    if config not in PRESETS:
        fail(f"--config must be one of {', '.join(PRESETS)}, not {config!r}")
    if init != "best":
        try:
            init = resolve_initializer_name(init)
        except ValueError:
            fail(f"--init must be best or one of {', '.join(INITIALIZER_NAMES)}, not {init!r}")
    if init not in ("best", "upright", "lifter", "mediapipe"):
        from fitter.regressors.checkpoints import checkpoints_dir, find_checkpoint

        name = {"cliff": "cliff_hr48"}.get(init, init)
        if find_checkpoint(name) is None and not (init == "cliff" and find_checkpoint("cliff_res50")):
            fail(
                f"--init {init}: no {init} checkpoint in {checkpoints_dir()} (see README: Regressor checkpoints; "
                f"`fitter models list` shows what is found)"
            )
    try:
        images = list_images(paths, recursive=recursive)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    options = FitOptions(out_dir=out, body_model=body_model, gender=gender, init=init, focal=focal,
                         refine=None if refine == "none" else refine,
                         keypoints=keypoints, silhouette=silhouette, parts=parts, config=config, device=device,
                         batch_size=batch_size, overwrite=overwrite, side_view=side_view, recursive=recursive,
                         gmm=gmm, landmarks3d=landmarks3d, auto_parts=auto_parts, threads=threads,
                         overlay_size=overlay_size, max_people=max_people,
                         detection_confidence=detection_confidence, hands=hands,
                         detect_passes=parse_detect_passes(detect_passes))  # fmt: skip
    roots = [p for p in paths if p.is_dir()]
    try:
        check_options(options, images, roots)  # every setting, before any image is read
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    require_device(device)
    out_resolved = out.resolve()
    images = [p for p in images if out_resolved not in p.resolve().parents]  # never refit our own outputs
    if not images:
        fail("no images found in " + ", ".join(str(p) for p in paths) + " (try --recursive)")
    import torch

    torch.set_num_threads(threads)
    with quiet_third_party(enabled=not verbose):
        summary = _run(images, options, roots, backend, address)
    _print_summary(summary, out)


def _run(images: list[Path], options, roots: list[Path], backend: str, address: str | None):
    """Fit `images` with a progress display; Ctrl-C stops with a line saying how to resume."""
    from fitter.pipeline import FitWorker, fit_paths, is_finished, output_stems

    worker = None
    stems = output_stems(images, roots, options.out_dir)
    if backend == "local" and (options.overwrite or not all(is_finished(stem) for stem in stems)):
        from fitter.pipeline.jobs import hands_body_model

        name = hands_body_model(options.body_model, options.hands)
        message = f"loading body model {name} (the free anny models are built once, ~2 min)..."
        try:  # the local backend's worker: body model, detector, initializer (Ray workers load their own)
            if console.is_terminal:
                with console.status(message):
                    worker = FitWorker(options)
            else:  # a log file gets one line instead of a spinner
                say(message)
                worker = FitWorker(options)
        except (FileNotFoundError, ValueError) as exc:
            fail(str(exc))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())  # fmt: skip
    finished: list[Path] = []
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            read = progress.add_task("read + detect", total=len(images), visible=backend == "local")
            fitted = progress.add_task("fit + write", total=len(images))

            def on_image(path: Path, status: str) -> None:
                finished.append(path)
                progress.advance(fitted)
                if status == "skipped":
                    progress.advance(read)
                if status.startswith("failed"):
                    progress.console.print(
                        f"{path}: {status}", highlight=False, markup=False, style="red", soft_wrap=True
                    )  # one line, also in a log file

            if backend == "ray":
                try:
                    from fitter.distributed import fit_paths_ray

                    return fit_paths_ray(images, options, roots=roots, on_image=on_image, address=address)
                except ModuleNotFoundError as exc:
                    fail(f"--backend ray needs Ray ({exc.name} is missing): pip install 'fitter[ray]'")
                except (RuntimeError, ValueError) as exc:
                    fail(str(exc))
            try:
                return fit_paths(images, options, roots=roots, on_image=on_image, worker=worker,
                                 on_read=lambda path: progress.advance(read))  # fmt: skip
            finally:
                if worker is not None:
                    worker.close()
    except KeyboardInterrupt:
        say(
            f"interrupted: {len(finished)} of {len(images)} images finished (kept); run the same command again "
            "to resume (finished images are skipped)"
        )
        raise typer.Exit(code=130) from None


def _print_summary(summary, out: Path) -> None:
    done, skipped, failed = len(summary.done), len(summary.skipped), len(summary.failed)
    per = summary.seconds / max(1, done)
    say(
        f"{done} fitted, {skipped} skipped (already done), {failed} failed in {summary.seconds:.1f} s "
        f"({per:.2f} s per fitted image); outputs in {out}"
    )
    for path, why in summary.people_skipped.items():
        say(f"  people not fitted in {path}: {why}")
    if failed:
        for path, why in summary.failed.items():
            say(f"  failed: {path}: {why}")
        raise typer.Exit(code=1)
