"""`fitter train ...`: train fitter's own regressors (NBF, the keypoint lifter) on synthetic data from the free body model."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from fitter.cli.common import console, fail, require_device

app = typer.Typer(
    help="Train regressors on synthetic renders of the body model (no data download needed).\n\n"
    "Examples:\n\n  fitter train nbf --steps 300 --batch-size 16 --resolution 64\n\n"
    "  fitter train nbf --device cuda --steps 20000 --batch-size 64 --resolution 128\n\n"
    "  fitter train lifter --out lifter.pt",
    no_args_is_help=True,
)


@contextmanager
def training_progress(label: str, steps: int,
                      describe: Callable[[dict[str, float]], str]) -> Iterator[Callable[[int, dict[str, float]], None]]:  # fmt: skip
    """A rich progress bar for `steps` training steps; yields update(steps done, loss values)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"[bold]{label}[/bold]"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("train", total=steps, loss="")
        yield lambda done, values: progress.update(task, completed=done, loss=describe(values))


@app.callback()
def train() -> None:
    """Train regressors on synthetic renders of the body model (keeps `train` a command group)."""


@app.command("nbf")
def train_nbf_command(
    steps: int = typer.Option(300, min=0, help="Adam steps (one fresh synthetic batch each)."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Bodies per step."),
    resolution: int = typer.Option(64, min=32, help="Input part-map side in pixels (the checkpoint records it)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    out: Path = typer.Option(
        None, help="Checkpoint path [default: $FITTER_HOME/data/checkpoints/nbf_<body model>.pt]."
    ),
    input_kind: str = typer.Option(
        "rendered",
        "--input",
        help="rendered (exact part maps) or split (silhouette split by the 2D skeleton, as on photos).",
    ),
    lr: float = typer.Option(1e-4, help="Adam learning rate."),
    pose_scale: float = typer.Option(0.6, help="Shrink joint-limit pose samples towards the mean pose (0..1)."),
    seed: int = typer.Option(0, help="Random seed of the synthetic data and the weights."),
    body_model: str = typer.Option("anny", "--body-model", help="Body model to render (anny, smpl, ... or a file)."),
    threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
) -> None:
    """Train the NBF regressor on 12-part maps rendered from the body model; writes a checkpoint
    that `fitter fit --init nbf` (find_checkpoint("nbf")) uses."""
    import torch

    from fitter.body import load_body_model
    from fitter.training.nbf import INPUT_KINDS, NBFTrainConfig, default_nbf_path, train_nbf

    if input_kind not in INPUT_KINDS:
        fail(f"--input must be one of {', '.join(INPUT_KINDS)}, not {input_kind!r}")
    require_device(device)
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        with console.status(f"loading {body_model}..."):
            model = load_body_model(body_model, device=device)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    config = NBFTrainConfig(steps=steps, batch_size=batch_size, resolution=resolution, lr=lr, input_kind=input_kind,
                            pose_scale=pose_scale, seed=seed)  # fmt: skip
    path = out if out is not None else default_nbf_path(model.name)

    with training_progress("nbf", steps, lambda v: " ".join(f"{k} {x:.4f}" for k, x in v.items())) as update:

        def on_step(step: int, values: dict[str, float]) -> None:  # step counts from 0
            update(step + 1, values)

        try:
            _, record = train_nbf(model, config, out_path=path, device=device, on_step=on_step)
        except ValueError as exc:
            fail(str(exc))
    history = record["loss_history"]
    tail = history[-min(20, len(history)) :] if history else []
    summary = f"final loss (mean of last {len(tail)}) {sum(tail) / len(tail):.4f}, " if tail else ""
    console.print(f"{summary}{record['seconds']:.0f} s; wrote {record['path']}")


@app.command("lifter")
def train_lifter_command(
    steps: int = typer.Option(24000, min=1, help="AdamW steps (one fresh synthetic batch each)."),
    batch_size: int = typer.Option(512, "--batch-size", min=1, help="Bodies per step."),
    lr: float = typer.Option(1e-3, help="Peak learning rate (cosine decay)."),
    init_from: Path = typer.Option(
        None, "--init-from", help="Continue from this lifter checkpoint instead of random weights."
    ),
    poses: Path = typer.Option(
        None, help="AMASS-style npz file or folder (array `poses`): pose 80 % of the bodies from it."
    ),
    poses_split: str = typer.Option(
        "train",
        "--poses-split",
        help="In pose files with a `split` array (fitter mocap import): only these frames (train | heldout | all).",
    ),
    input_sets: str = typer.Option(
        "all",
        "--input-sets",
        help="Keypoint sets shown to the lifter, comma-separated (all: coco17, openpose25, coco18, blazepose33, h36m17, lsp14, smpl24); its inputs are their points.",
    ),
    mirror: bool = typer.Option(
        False, "--mirror/--no-mirror", help="Also pose bodies from the left/right mirror image of every --poses pose."
    ),
    pose_mix: float = typer.Option(
        0.0,
        "--pose-mix",
        min=0.0,
        max=1.0,
        help="Share of --poses bodies whose arms, legs and torso come from different poses (new combinations).",
    ),
    max_minutes: float = typer.Option(
        None, "--max-minutes", min=0.1, help="Stop (and save) after this many minutes of training."
    ),
    width: int = typer.Option(512, min=16, help="Hidden width of a new lifter (ignored with --init-from)."),
    blocks: int = typer.Option(3, min=1, help="Residual blocks of a new lifter (ignored with --init-from)."),
    seed: int = typer.Option(0, help="Random seed of the synthetic data and the weights."),
    body_model: str = typer.Option(
        "anny", "--body-model", help="Body model whose bodies are sampled (anny, smpl, ... or a file)."
    ),
    device: str = typer.Option("cpu", help="Where the lifter trains: cpu or cuda (batches are drawn on the CPU)."),
    workers: int = typer.Option(
        0, min=0, help="Processes drawing batches (0: the training process; reproducible, one generator)."
    ),
    out: Path = typer.Option(
        None, help="Checkpoint path (default: the file shipped in the package, which fit_keypoints loads)."
    ),
    threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
) -> None:
    """Train the keypoint lifter that starts `fit_keypoints` (2D keypoints of any set -> pose,
    orientation, shape) on synthetic bodies posed inside the joint limits (and from --poses).

    The shipped weights: see README, "How a fit starts and runs" (the recipe and its time)."""
    import torch

    from fitter.body import load_body_model
    from fitter.regressors.lifter import default_lifter_path
    from fitter.training.lifter import LifterTrainConfig, train_lifter

    if threads > 0:
        torch.set_num_threads(threads)
    require_device(device)
    try:
        with console.status(f"loading {body_model}..."):
            model = load_body_model(body_model)
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    path = out if out is not None else default_lifter_path()
    if init_from is not None and not init_from.is_file():
        fail(f"--init-from {init_from}: no such file")
    if poses is not None and not poses.exists():
        fail(f"--poses {poses}: no such file or folder")
    from fitter.keypoints import KEYPOINT_SETS
    from fitter.regressors.lifter import LIFTER_INPUT_SETS
    from fitter.training.lifter import DEFAULT_SET_WEIGHTS

    sets = LIFTER_INPUT_SETS if input_sets == "all" else tuple(s.strip() for s in input_sets.split(",") if s.strip())
    unknown = [s for s in sets if s not in KEYPOINT_SETS]
    if not sets or unknown:
        fail(
            f"--input-sets: unknown keypoint set(s) {', '.join(unknown) or '(none given)'}; use {', '.join(KEYPOINT_SETS)}"
        )
    default_weights = dict(zip(LIFTER_INPUT_SETS, DEFAULT_SET_WEIGHTS))
    config = LifterTrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                               init_from=str(init_from) if init_from is not None else None,
                               poses=str(poses) if poses is not None else None,
                               pose_split=None if poses_split == "all" else poses_split, pose_mirror=mirror, input_sets=sets,
                               input_set_weights=tuple(default_weights.get(s, 1.0) for s in sets),
                               max_seconds=None if max_minutes is None else 60.0 * max_minutes, pose_mix=pose_mix,
                               width=width, blocks=blocks, device=device, workers=workers)  # fmt: skip

    with training_progress("lifter", steps, lambda v: f"loss {v['total']:.4f}") as on_step:
        try:
            record = train_lifter(model, config, path, progress=on_step)
        except ValueError as exc:  # unreadable pose files
            fail(str(exc))
    losses = " ".join(f"{k} {v:.4f}" for k, v in record["final_losses"].items())
    console.print(f"final losses (mean of last 200 steps): {losses}; {record['seconds']:.0f} s; wrote {path}")
