"""What a user can get wrong or hit with `fitter fit`, each case run as its own `fitter fit` process
and checked automatically: honest results and nothing lost.

Run:  python benchmarks/failures.py [-k SUBSTRING ...] [--keep] [--width 220]

Every case builds its inputs in a fresh temporary folder and runs `python -m fitter.cli.main fit
... --config fast` there (keypoint files from `fitter.synthetic.sample_cases` wherever detection
is not the point, so a case takes a few seconds). Each case ends with either a correct result
(the .npz loads, status ok, small 2D error, the photo's pixels read right) or a clear error for
that item only; the checks are: the exit code (non-zero when anything failed), a message
substring, which output files exist and which must not, no `*.tmp` (or write probe) left, no
Python traceback in the output, the failing item named on one line. Prints a table case |
expectation | outcome | pass; exits 1 when any case fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table
from rich.text import Text

ROOT = Path(__file__).resolve().parents[1]
SIZE = (640, 480)  # (W, H) of the photos the keypoints are made for
GREY = (90, 90, 90)


@dataclass
class Run:
    """One `fitter fit` process: exit code, stdout + stderr, wall seconds."""

    rc: int
    output: str
    seconds: float

    @property
    def text(self) -> str:
        return " ".join(self.output.split())

    @property
    def lines(self) -> list[str]:
        return [line.strip() for line in self.output.splitlines() if line.strip()]

    def key_line(self) -> str:
        """The line that tells the outcome: an error, else the first failure, else the summary."""
        for prefix in ("error:", "interrupted:"):
            hit = next((line for line in self.lines if line.startswith(prefix)), None)
            if hit:
                return hit
        hit = next((line for line in self.lines if line.startswith("failed:")), None)
        hit = hit or next((line for line in self.lines if line.startswith("people not fitted")), None)
        summary = next((line for line in self.lines if " fitted, " in line), "")
        summary = summary.split(" failed in ")[0] + " failed" if summary else ""
        if hit:
            return f"{summary}; {hit}" if summary else hit
        return summary or (self.lines[-1] if self.lines else "(no output)")


class Ctx:
    """A case's folder, its inputs and its `fitter fit` runs; collects what did not hold."""

    def __init__(self, folder: Path, people: np.ndarray) -> None:
        self.dir = folder
        self.people = people  # (n,17,3) COCO-17 keypoints inside a 640x480 photo
        self.problems: list[str] = []
        self.runs: list[Run] = []
        self.outcome: str | None = None

    # --- inputs -------------------------------------------------------------------------
    def path(self, rel: str | Path) -> Path:
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def photo(self, rel: str, size=SIZE, color=GREY, **save) -> Path:
        path = self.path(rel)
        Image.fromarray(np.full((size[1], size[0], 3), color, np.uint8)).save(path, **save)
        return path

    def kp(self, rel: str, *people: np.ndarray, ids=None) -> Path:
        from fitter.io.keypoint_files import KeypointFile, write_keypoints_file

        people = people or (self.people[0],)
        path = self.path(rel)
        write_keypoints_file(path, KeypointFile(np.stack(people), "coco17", None if ids is None else np.array(ids)))
        return path

    # --- runs ---------------------------------------------------------------------------
    def command(self, *args, fast: bool = True) -> list[str]:
        return [
            sys.executable,
            "-m",
            "fitter.cli.main",
            "fit",
            *map(str, args),
            *(["--config", "fast"] if fast else []),
        ]

    def env(self) -> dict:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env.pop("SMPL_MODELS_DIR", None)
        env.pop("COLUMNS", None)  # output as a log file gets it
        return env

    def fit(self, *args, fast: bool = True, timeout: float = 300) -> Run:
        start = time.perf_counter()
        try:
            proc = subprocess.run(self.command(*args, fast=fast), cwd=self.dir, env=self.env(), capture_output=True,
                                  text=True, timeout=timeout)  # fmt: skip
            run = Run(proc.returncode, proc.stdout + proc.stderr, time.perf_counter() - start)
        except subprocess.TimeoutExpired as exc:
            out = (exc.stdout or b"").decode() + (exc.stderr or b"").decode() if isinstance(exc.stdout, bytes) else ""
            run = Run(-999, out + f"\n(timed out after {timeout} s)", time.perf_counter() - start)
        self._common(run)
        self.runs.append(run)
        return run

    def start(self, *args, fast: bool = True) -> tuple[subprocess.Popen, Path]:
        """Start a run in its own process group (as a shell job); output goes to a log file."""
        log = self.path(f"run{len(self.runs)}.log")
        handle = open(log, "w")  # noqa: SIM115
        proc = subprocess.Popen(self.command(*args, fast=fast), cwd=self.dir, env=self.env(), stdout=handle,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        handle.close()
        return proc, log

    def finish(self, proc: subprocess.Popen, log: Path, started: float, timeout: float = 300) -> Run:
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = -999
        run = Run(rc, log.read_text(errors="replace"), time.perf_counter() - started)
        log.unlink()
        self._common(run)
        self.runs.append(run)
        return run

    def _common(self, run: Run) -> None:
        if "Traceback" in run.output:
            self.problems.append("a Python traceback in the output")
        if run.rc == -999:
            self.problems.append("timed out")

    # --- checks -------------------------------------------------------------------------
    def expect(self, ok: bool, what: str) -> bool:
        if not ok:
            self.problems.append(what)
        return ok

    def rc(self, run: Run, code: int) -> None:
        self.expect(run.rc == code, f"exit code {run.rc}, expected {code}")

    def says(self, run: Run, *parts: str) -> None:
        for part in parts:
            self.expect(part in run.text, f"no {part!r} in the output")

    def summary(self, run: Run, fitted: int, skipped: int, failed: int) -> None:
        self.says(run, f"{fitted} fitted, {skipped} skipped (already done), {failed} failed")

    def refused(self, run: Run, message: str, out: str = "out") -> None:
        """A one-line `error:` and exit 1, nothing written under `out`."""
        self.rc(run, 1)
        self.says(run, message)
        self.expect(len(run.lines) == 1 and run.lines[0].startswith("error:"),
                    f"not a one-line error: {run.lines[:3]}")  # fmt: skip
        out_dir = self.dir / out
        if out_dir.is_dir():
            self.expect(not any(out_dir.rglob("*")), f"{out}/ is not empty after a refused run")

    def item_failed(self, run: Run, item: str, message: str) -> None:
        """The failing item is named with its whole reason on one line, both as it fails
        ('<item>: failed: ...') and in the end summary ('failed: <item>: ...')."""
        summary = next((line for line in run.lines if line.startswith(f"failed: {item}: ")), None)
        if self.expect(summary is not None, f"no one-line 'failed: {item}: ...' in the summary"):
            self.expect(message in summary, f"the failure line of {item} lacks {message!r}: {summary!r}")
            live = f"{item}: failed: {summary.removeprefix(f'failed: {item}: ')}"
            self.expect(live in run.lines, f"the line printed as {item} failed is not one whole line")

    def exists(self, *rels: str) -> None:
        for rel in rels:
            self.expect((self.dir / rel).exists(), f"{rel} missing")

    def absent(self, *rels: str) -> None:
        for rel in rels:
            self.expect(not (self.dir / rel).exists(), f"{rel} exists but must not")

    def result_ok(self, stem: str, image: str | None = None, size=SIZE, person_id: int | None = None) -> None:
        """A correct finished result at stem: .npz (loads, ok, small 2D error), .json, .obj, no .failed.json."""
        from fitter.result import FitResult

        npz = self.dir / f"{stem}.npz"
        if not self.expect(npz.exists(), f"{stem}.npz missing"):
            return
        self.exists(f"{stem}.json", f"{stem}.obj")
        self.absent(f"{stem}.failed.json")
        try:
            res = FitResult.load(npz)
        except Exception as exc:  # noqa: BLE001
            self.problems.append(f"{stem}.npz does not load ({type(exc).__name__}: {exc})")
            return
        self.expect(res.status[0] == "ok", f"{stem}: status {res.status[0]!r}")
        err = float(res.reprojection_error_px[0])
        self.expect(err < 15.0, f"{stem}: 2D error {err:.1f} px")
        self.expect(
            tuple(int(v) for v in res.image_size[0]) == tuple(size),
            f"{stem}: image size {res.image_size[0]}, expected {size}",
        )
        if image is not None:
            self.expect(
                res.info.get("image") == image, f"{stem}: made from {res.info.get('image')!r}, expected {image!r}"
            )
        if person_id is not None:
            self.expect(
                int(res.extras["person_id"][0]) == person_id,
                f"{stem}: person {res.extras['person_id']}, expected {person_id}",
            )

    def overlay_pixel(self, rel: str, xy: tuple[int, int], rgb, tol: int = 12) -> None:
        """A background pixel of an overlay: the photo's pixels were read right."""
        path = self.dir / rel
        if not self.expect(path.exists(), f"{rel} missing"):
            return
        with Image.open(path) as img:
            got = np.array(img.convert("RGB"))[xy[1], xy[0]].astype(int)
        self.expect(
            np.abs(got - np.array(rgb)).max() <= tol, f"{rel} pixel {xy} is {tuple(got)}, expected ~{tuple(rgb)}"
        )

    def npz_count(self, rel: str = "out") -> int:
        return len(list((self.dir / rel).rglob("*.npz")))

    def no_leftovers(self) -> None:
        tmp = [str(p.relative_to(self.dir)) for p in self.dir.rglob("*") if p.name.endswith(".tmp")
               or p.name.startswith(".fitter-write-test")]  # fmt: skip
        self.expect(not tmp, f"left behind: {tmp[:3]}")


@dataclass
class Case:
    name: str
    expectation: str
    body: Callable[[Ctx], None]


CASES: list[Case] = []


def case(name: str, expectation: str):
    def register(fn: Callable[[Ctx], None]) -> Callable[[Ctx], None]:
        CASES.append(Case(name, expectation, fn))
        return fn

    return register


# --- photos that are broken, odd or empty ----------------------------------------------------


def _good_and(ctx: Ctx, bad: str) -> None:
    """in/good.png (+ keypoints) beside the bad item in/<bad> (+ keypoints named after it)."""
    ctx.photo("in/good.png")
    ctx.kp("kp/good.json")
    ctx.kp(f"kp/{Path(bad).stem}.json")


def _one_bad_image(ctx: Ctx, bad: str, message: str) -> None:
    run = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(run, 1)
    ctx.summary(run, 1, 0, 1)
    ctx.item_failed(run, f"in/{bad}", message)
    ctx.result_ok("out/good", "in/good.png")
    stem = Path(bad).stem
    ctx.absent(f"out/{stem}.npz", f"out/{stem}_overlay.png")


@case("corrupt JPEG", "truncated in/bad.jpg fails alone (corrupt), good.png fitted, exit 1")
def _(ctx: Ctx) -> None:
    _good_and(ctx, "bad.jpg")
    noise = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
    Image.fromarray(noise).save(ctx.path("full.jpg"), quality=95)
    data = ctx.path("full.jpg").read_bytes()
    ctx.path("in/bad.jpg").write_bytes(data[: len(data) * 2 // 5])
    _one_bad_image(ctx, "bad.jpg", "corrupt or truncated")


@case("0-byte .jpg", "in/zero.jpg fails alone saying the file is empty, exit 1")
def _(ctx: Ctx) -> None:
    _good_and(ctx, "zero.jpg")
    ctx.path("in/zero.jpg").write_bytes(b"")
    _one_bad_image(ctx, "zero.jpg", "empty")


@case("text file named .jpg", "in/notes.jpg (text) fails alone: not an image, exit 1")
def _(ctx: Ctx) -> None:
    _good_and(ctx, "notes.jpg")
    ctx.path("in/notes.jpg").write_text("shopping list\n")
    _one_bad_image(ctx, "notes.jpg", "not an image")


@case("CMYK JPEG", "fitted; colours read right (overlay background ~ the RGB photo), exit 0")
def _(ctx: Ctx) -> None:
    color = (200, 60, 40)
    Image.fromarray(np.full((480, 640, 3), color, np.uint8)).convert("CMYK").save(ctx.path("cmyk.jpg"), quality=95)
    with Image.open(ctx.dir / "cmyk.jpg") as img:
        ctx.expect(img.mode == "CMYK", f"the test photo is {img.mode}, not CMYK")
    run = ctx.fit("cmyk.jpg", "--keypoints", ctx.kp("cmyk.json"), "--out", "out")
    ctx.rc(run, 0)
    ctx.result_ok("out/cmyk", "cmyk.jpg")
    ctx.overlay_pixel("out/cmyk_overlay.png", (3, 3), color, tol=20)


@case("16-bit PNG", "fitted; 16-bit grey scaled to 8 bits, exit 0")
def _(ctx: Ctx) -> None:
    Image.fromarray(np.full((480, 640), 40000, np.uint16)).save(ctx.path("deep.png"))
    with Image.open(ctx.dir / "deep.png") as img:
        ctx.expect(img.mode.startswith("I;16") or img.mode == "I", f"the test photo is {img.mode}, not 16-bit")
    run = ctx.fit("deep.png", "--keypoints", ctx.kp("deep.json"), "--out", "out")
    ctx.rc(run, 0)
    ctx.result_ok("out/deep", "deep.png")
    v = round(40000 * 255 / 65535)
    ctx.overlay_pixel("out/deep_overlay.png", (3, 3), (v, v, v), tol=2)


@case("grayscale JPEG", "fitted; grey read as grey RGB, exit 0")
def _(ctx: Ctx) -> None:
    Image.fromarray(np.full((480, 640), 150, np.uint8), "L").save(ctx.path("grey.jpg"))
    run = ctx.fit("grey.jpg", "--keypoints", ctx.kp("grey.json"), "--out", "out")
    ctx.rc(run, 0)
    ctx.result_ok("out/grey", "grey.jpg")
    ctx.overlay_pixel("out/grey_overlay.png", (3, 3), (150, 150, 150), tol=3)


@case("RGBA PNG", "fitted; transparent pixels on white, opaque ones kept, exit 0")
def _(ctx: Ctx) -> None:
    rgba = np.zeros((480, 640, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # colour stored under alpha 0 must not show
    rgba[:, 320:] = (200, 100, 50, 255)
    Image.fromarray(rgba, "RGBA").save(ctx.path("alpha.png"))
    run = ctx.fit("alpha.png", "--keypoints", ctx.kp("alpha.json"), "--out", "out")
    ctx.rc(run, 0)
    ctx.result_ok("out/alpha", "alpha.png")
    ctx.overlay_pixel("out/alpha_overlay.png", (3, 3), (255, 255, 255), tol=2)
    ctx.overlay_pixel("out/alpha_overlay.png", (636, 3), (200, 100, 50), tol=2)


@case("EXIF-rotated JPEG", "stored 480x640 + Orientation 6: fitted upright 640x480 (keypoints in the upright frame)")
def _(ctx: Ctx) -> None:
    upright = np.full((480, 640, 3), GREY, np.uint8)
    upright[:40, :40] = (230, 20, 20)  # top-left red
    upright[:40, -40:] = (20, 20, 230)  # top-right blue
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # viewer turns it back (orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(ctx.path("rot.jpg"), exif=exif, quality=95)
    run = ctx.fit("rot.jpg", "--keypoints", ctx.kp("rot.json"), "--out", "out")
    ctx.rc(run, 0)
    ctx.result_ok("out/rot", "rot.jpg", size=(640, 480))
    ctx.overlay_pixel("out/rot_overlay.png", (10, 10), (230, 20, 20), tol=30)
    ctx.overlay_pixel("out/rot_overlay.png", (629, 10), (20, 20, 230), tol=30)


@case("tiny 8x8 image (detector)", "no person detected: fails alone with that reason, exit 1, no outputs")
def _(ctx: Ctx) -> None:
    ctx.photo("in/tiny.png", size=(8, 8), color=(120, 90, 60))
    run = ctx.fit("in", "--out", "out")
    ctx.rc(run, 1)
    ctx.summary(run, 0, 0, 1)
    ctx.item_failed(run, "in/tiny.png", "no person detected")
    ctx.expect(not (ctx.dir / "out").exists() or not any((ctx.dir / "out").iterdir()), "outputs written for tiny.png")


@case("photo with nobody (detector)", "blank 640x480: no person detected, fails alone, exit 1, no outputs")
def _(ctx: Ctx) -> None:
    ctx.photo("in/blank.jpg")
    run = ctx.fit("in", "--out", "out")
    ctx.rc(run, 1)
    ctx.summary(run, 0, 0, 1)
    ctx.item_failed(run, "in/blank.jpg", "no person detected")
    ctx.absent("out/blank.npz", "out/blank_overlay.png")


# --- what the command line names ------------------------------------------------------------


@case("named non-image file", "notes.txt given: one-line error naming it, exit 1, nothing done")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    ctx.path("notes.txt").write_text("hello")
    ctx.refused(ctx.fit("a.png", "notes.txt", "--keypoints", ctx.kp("kp/a.json"), "--out", "out"),
                "notes.txt does not have an image extension")  # fmt: skip


@case("missing path", "one-line error naming it, exit 1")
def _(ctx: Ctx) -> None:
    ctx.refused(ctx.fit("nowhere/photo.jpg", "--out", "out"), "no such file or folder: nowhere/photo.jpg")


@case("empty folder", "one-line error: no images found, exit 1")
def _(ctx: Ctx) -> None:
    ctx.path("empty/x").parent.mkdir(exist_ok=True)
    ctx.refused(ctx.fit("empty", "--out", "out"), "no images found in empty")


@case("--out is a file", "one-line error, exit 1, the file untouched")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    ctx.path("out.txt").write_text("keep me")
    ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out.txt"), "--out out.txt is a file")
    ctx.expect((ctx.dir / "out.txt").read_text() == "keep me", "out.txt changed")


@case("--out not creatable (/proc)", "one-line error: not writable, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "/proc/fitter_out"), "is not writable")


@case("--out = the input folder", "one-line error: the folder the photos are in, exit 1, nothing written")
def _(ctx: Ctx) -> None:
    ctx.photo("in/a.png")
    ctx.kp("kp/a.json")
    run = ctx.fit("in", "--keypoints", "kp", "--out", "in/")
    ctx.refused(run, "is the folder the photos are in", out="nothing")
    ctx.expect(sorted(p.name for p in (ctx.dir / "in").iterdir()) == ["a.png"], "files written into in/")


for _value in ("0", "-5", "nan"):

    @case(f"--focal {_value}", "one-line error: a positive number of pixels, exit 1")
    def _(ctx: Ctx, value=_value) -> None:
        ctx.photo("a.png")
        ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out", "--focal", value),
                    "--focal must be a positive number of pixels")  # fmt: skip


for _device in ("tpu", "mps"):

    @case(f"--device {_device}", "one-line error: cpu, cuda or cuda:N, exit 1")
    def _(ctx: Ctx, device=_device) -> None:
        ctx.photo("a.png")
        ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out", "--device", device),
                    "--device must be cpu, cuda or cuda:N")  # fmt: skip


@case("--gmm missing", "one-line error naming the file, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out", "--gmm", "gmm_08.pkl"),
                "--gmm gmm_08.pkl does not exist")  # fmt: skip


@case("--parts missing", "one-line error naming the path, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out", "--parts", "parts/"),
                "--parts parts does not exist")  # fmt: skip


@case("--refine eft with the lifter", "one-line error: EFT needs a regressor start, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out", "--init", "lifter", "--refine", "eft"),
                "--refine eft fine-tunes a regressor")  # fmt: skip


@case("--init cliff, no checkpoint", "one-line error: no cliff checkpoint, where to put it, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out", "--init", "cliff"),
                "--init cliff: no cliff checkpoint in")  # fmt: skip


@case("--config unknown", "one-line error listing the presets, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    ctx.refused(ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out", "--config", "turbo", fast=False),
                "--config must be one of fast, default, accurate, smplify, not 'turbo'")  # fmt: skip


@case("--body-model smpl, no files", "one-line error: SMPL files not found, where to put them, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("a.png")
    run = ctx.fit("a.png", "--keypoints", ctx.kp("a.json"), "--out", "out", "--body-model", "smpl")
    ctx.rc(run, 1)
    errors = [line for line in run.lines if line.startswith("error:")]
    ctx.expect(len(errors) == 1 and "smpl" in errors[0].lower(), f"no one-line error about smpl: {run.lines[-2:]}")
    ctx.absent("out/a.npz")


# --- keypoint files -------------------------------------------------------------------------


@case("--keypoints FILE, several photos", "refused up front: one photo's keypoints for 2 photos, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("in/a.png")
    ctx.photo("in/b.png")
    ctx.refused(ctx.fit("in/a.png", "in/b.png", "--keypoints", ctx.kp("one.json"), "--out", "out"),
                "holds one photo's keypoints but 2 photos")  # fmt: skip


@case("keypoint folder lacks one photo", "b.png fails alone (no keypoint file for it), a.png fitted, exit 1")
def _(ctx: Ctx) -> None:
    ctx.photo("in/a.png")
    ctx.photo("in/b.png")
    ctx.kp("kp/a.json")
    run = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(run, 1)
    ctx.summary(run, 1, 0, 1)
    ctx.item_failed(run, "in/b.png", "no keypoint file for b.png")
    ctx.result_ok("out/a", "in/a.png")
    ctx.absent("out/b.npz")


def _bad_keypoints(ctx: Ctx, content: str, message: str) -> None:
    _good_and(ctx, "b.png")
    ctx.photo("in/b.png")
    ctx.path("kp/b.json").write_text(content)
    _one_bad_image(ctx, "b.png", message)


@case("invalid JSON keypoint file", "b.png fails alone: not valid JSON, exit 1")
def _(ctx: Ctx) -> None:
    _bad_keypoints(ctx, '{"keypoint_set": "coco17", "people": [', "not valid JSON")


@case("wrong number of points", "b.png fails alone: 17 expected, 16 given, exit 1")
def _(ctx: Ctx) -> None:
    import json

    content = json.dumps({"keypoint_set": "coco17", "people": [{"id": 0, "keypoints": ctx.people[0][:16].tolist()}]})
    _bad_keypoints(ctx, content, "has 17 keypoints but the data has 16")


@case("all-zero confidences", "b.png fails alone: no person with 2 keypoints, exit 1")
def _(ctx: Ctx) -> None:
    import json

    zero = ctx.people[0].copy()
    zero[:, 2] = 0
    content = json.dumps({"keypoint_set": "coco17", "people": [{"id": 0, "keypoints": zero.tolist()}]})
    _bad_keypoints(ctx, content, "has no person with at least 2 keypoints")


@case("keypoints outside the image", "not ok: failed with the reason, no .npz, a .failed.json; re-run retries it")
def _(ctx: Ctx) -> None:
    ctx.photo("in/far.png")
    outside = ctx.people[0].copy()
    outside[:, 0] += 2000.0
    ctx.kp("kp/far.json", outside)
    first = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(first, 1)
    ctx.summary(first, 0, 0, 1)
    ctx.item_failed(first, "in/far.png", "outside the 640x480 image")
    ctx.absent("out/far.npz", "out/far.json", "out/far.obj")
    ctx.exists("out/far.failed.json")
    again = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(again, 1)
    ctx.summary(again, 0, 0, 1)  # retried, not skipped
    ctx.absent("out/far.npz")
    ctx.outcome = f"rc={first.rc}: {first.key_line()} | re-run rc={again.rc}: {again.key_line()}"


@case("extra person with 1 keypoint", "person 0 fitted; person 7 named in the summary as not fitted, exit 0")
def _(ctx: Ctx) -> None:
    ctx.photo("in/a.png")
    lonely = ctx.people[1].copy()
    lonely[1:, 2] = 0.0
    ctx.kp("kp/a.json", ctx.people[0], lonely, ids=[0, 7])
    run = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(run, 0)
    ctx.summary(run, 1, 0, 0)
    ctx.says(run, "people not fitted in in/a.png: person 7: 1 keypoint(s)")
    ctx.result_ok("out/a", "in/a.png", person_id=0)
    ctx.absent("out/a_p7.npz")


@case("multi-person keypoint file", "one output set per person (_p0, _p3), one overlay; re-run skips, exit 0")
def _(ctx: Ctx) -> None:
    ctx.photo("in/a.png")
    ctx.kp("kp/a.json", ctx.people[0], ctx.people[1], ids=[0, 3])
    run = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(run, 0)
    ctx.summary(run, 1, 0, 0)
    ctx.result_ok("out/a_p0", "in/a.png", person_id=0)
    ctx.result_ok("out/a_p3", "in/a.png", person_id=3)
    ctx.exists("out/a_overlay.png")
    ctx.absent("out/a.npz")
    again = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(again, 0)
    ctx.summary(again, 0, 1, 0)
    ctx.outcome = (
        f"rc={run.rc}: {run.key_line()}; a_p0.*, a_p3.*, a_overlay.png | re-run rc={again.rc}: {again.key_line()}"
    )


# --- names ----------------------------------------------------------------------------------


@case("photo.jpg + photo.png", "both kept: photo.jpg.* and photo.png.*, each from its own photo; re-run skips both")
def _(ctx: Ctx) -> None:
    ctx.photo("in/photo.png")
    ctx.photo("in/photo.jpg")
    ctx.kp("kp/photo.json")
    run = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(run, 0)
    ctx.summary(run, 2, 0, 0)
    ctx.result_ok("out/photo.jpg", "in/photo.jpg")
    ctx.result_ok("out/photo.png", "in/photo.png")
    ctx.exists("out/photo.jpg_overlay.png", "out/photo.png_overlay.png")
    again = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.summary(again, 0, 2, 0)
    ctx.outcome = f"rc={run.rc}: {run.key_line()}; photo.jpg.*, photo.png.* | re-run rc={again.rc}: {again.key_line()}"


@case("a/img.jpg + b/img.jpg as files", "both kept: out/a/img.jpg.* and out/b/img.jpg.*, exit 0")
def _(ctx: Ctx) -> None:
    ctx.photo("a/img.jpg")
    ctx.photo("b/img.jpg")
    ctx.kp("kp/img.json")
    run = ctx.fit("a/img.jpg", "b/img.jpg", "--keypoints", "kp", "--out", "out")
    ctx.rc(run, 0)
    ctx.summary(run, 2, 0, 0)
    ctx.result_ok("out/a/img.jpg", "a/img.jpg")
    ctx.result_ok("out/b/img.jpg", "b/img.jpg")


@case(
    "brackets: 'shoot [raw] [/x]'",
    "paths printed as they are; a [1] and 2-person b [1] fitted, c [bold] fails; re-run skips a, b",
)
def _(ctx: Ctx) -> None:
    folder = "shoot [raw] [/x]"  # folders 'shoot [raw] [' / 'x]'
    ctx.photo(f"{folder}/a [1].png")
    ctx.photo(f"{folder}/b [1].png")
    ctx.path(f"{folder}/c [bold].png").write_bytes(b"not a png")
    ctx.kp("kp/a [1].json")
    ctx.kp("kp/b [1].json", ctx.people[0], ctx.people[1], ids=[0, 3])
    ctx.kp("kp/c [bold].json")
    run = ctx.fit(folder, "--keypoints", "kp", "--out", "out [x]")
    ctx.rc(run, 1)
    ctx.summary(run, 2, 0, 1)
    ctx.item_failed(run, f"{folder}/c [bold].png", "cannot read")
    ctx.result_ok("out [x]/a [1]", f"{folder}/a [1].png")
    ctx.result_ok("out [x]/b [1]_p0", f"{folder}/b [1].png", person_id=0)
    ctx.result_ok("out [x]/b [1]_p3", f"{folder}/b [1].png", person_id=3)
    again = ctx.fit(folder, "--keypoints", "kp", "--out", "out [x]")
    ctx.rc(again, 1)
    ctx.summary(again, 0, 2, 1)
    ctx.outcome = f"rc={run.rc}: {run.key_line()} | re-run rc={again.rc}: {again.key_line()}"


@case(
    "a.png beside a_party.png", "a_party.png fitted first; then the folder: a.png is fitted, not taken as done, exit 0"
)
def _(ctx: Ctx) -> None:
    ctx.photo("in/a.png")
    ctx.photo("in/a_party.png")
    ctx.kp("kp/a.json")
    ctx.kp("kp/a_party.json")
    first = ctx.fit("in/a_party.png", "--keypoints", "kp", "--out", "out")
    ctx.rc(first, 0)
    run = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(run, 0)
    ctx.summary(run, 1, 1, 0)
    ctx.result_ok("out/a", "in/a.png")
    ctx.result_ok("out/a_party", "in/a_party.png")


# --- runs that stop, and runs again -----------------------------------------------------------

FOLDER_PHOTOS = 12


def _folder(ctx: Ctx) -> None:
    for i in range(FOLDER_PHOTOS):
        ctx.photo(f"in/p{i:02d}.png")
        ctx.kp(f"kp/p{i:02d}.json", ctx.people[i % len(ctx.people)])


def _stop_mid_run(ctx: Ctx, sig: int) -> tuple[Run, int] | None:
    """Start a folder run, send `sig` to its process group once 2 results exist; (run, results then)."""
    proc, log = ctx.start("in", "--keypoints", "kp", "--out", "out", "--batch-size", "2")
    started = time.perf_counter()
    while proc.poll() is None and ctx.npz_count() < 2 and time.perf_counter() - started < 240:
        time.sleep(0.01)
    if proc.poll() is not None:
        ctx.problems.append("the run ended before it could be stopped")
        ctx.finish(proc, log, started)
        return None
    os.killpg(proc.pid, sig)
    if sig == signal.SIGKILL:
        proc.wait()
    run = ctx.finish(proc, log, started)
    return run, ctx.npz_count()


def _all_done(ctx: Ctx) -> None:
    for i in range(FOLDER_PHOTOS):
        ctx.result_ok(f"out/p{i:02d}", f"in/p{i:02d}.png")
        ctx.exists(f"out/p{i:02d}_overlay.png")


@case(
    "kill -9 mid folder run, re-run", "re-run resumes: finished ones skipped, the rest fitted, all 12 correct, no .tmp"
)
def _(ctx: Ctx) -> None:
    _folder(ctx)
    stopped = _stop_mid_run(ctx, signal.SIGKILL)
    if stopped is None:
        return
    killed, done = stopped
    ctx.rc(killed, -signal.SIGKILL)
    tmp_after_kill = len([p for p in (ctx.dir / "out").rglob("*.tmp")])
    ctx.runs.remove(killed)  # its log is cut off mid-line by the kill; only the re-run's is judged
    again = ctx.fit("in", "--keypoints", "kp", "--out", "out", "--batch-size", "2")
    ctx.rc(again, 0)
    ctx.summary(again, FOLDER_PHOTOS - done, done, 0)
    _all_done(ctx)
    ctx.outcome = (f"killed with {done} of {FOLDER_PHOTOS} finished, {tmp_after_kill} .tmp left | "
                   f"re-run rc={again.rc}: {again.key_line()}")  # fmt: skip


@case("SIGINT mid folder run", "exit 130 + how to resume, nothing half-written; the re-run finishes the rest")
def _(ctx: Ctx) -> None:
    _folder(ctx)
    stopped = _stop_mid_run(ctx, signal.SIGINT)
    if stopped is None:
        return
    stopped_run, done = stopped
    ctx.rc(stopped_run, 130)
    ctx.says(
        stopped_run,
        f"interrupted: {done} of {FOLDER_PHOTOS} images finished (kept)",
        "run the same command again to resume",
    )
    ctx.no_leftovers()
    again = ctx.fit("in", "--keypoints", "kp", "--out", "out", "--batch-size", "2")
    ctx.rc(again, 0)
    ctx.summary(again, FOLDER_PHOTOS - done, done, 0)
    _all_done(ctx)
    ctx.outcome = f"rc={stopped_run.rc}: {stopped_run.key_line()} | re-run rc={again.rc}: {again.key_line()}"


@case("re-run after success", "skipped, files untouched, exit 0")
def _(ctx: Ctx) -> None:
    ctx.photo("in/a.png")
    ctx.kp("kp/a.json")
    first = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(first, 0)
    ctx.result_ok("out/a", "in/a.png")
    before = {p.name: p.stat().st_mtime_ns for p in (ctx.dir / "out").iterdir()}
    again = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(again, 0)
    ctx.summary(again, 0, 1, 0)
    after = {p.name: p.stat().st_mtime_ns for p in (ctx.dir / "out").iterdir()}
    ctx.expect(before == after, "outputs changed on the re-run")


@case("re-run after a failure", "the failed photo is retried (good one skipped); once fixed it is fitted, exit 0")
def _(ctx: Ctx) -> None:
    _good_and(ctx, "bad.png")
    ctx.path("in/bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    first = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(first, 1)
    ctx.summary(first, 1, 0, 1)
    again = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(again, 1)
    ctx.summary(again, 0, 1, 1)
    ctx.item_failed(again, "in/bad.png", "cannot read")
    ctx.photo("in/bad.png")
    fixed = ctx.fit("in", "--keypoints", "kp", "--out", "out")
    ctx.rc(fixed, 0)
    ctx.summary(fixed, 1, 1, 0)
    ctx.result_ok("out/bad", "in/bad.png")
    ctx.outcome = f"rc={first.rc} | re-run rc={again.rc}: {again.key_line()} | fixed rc={fixed.rc}: {fixed.key_line()}"


# --- running -----------------------------------------------------------------------------------


def run_case(item: Case, base: Path, people: np.ndarray) -> tuple[str, list[str], float]:
    folder = base / re.sub(r"[^A-Za-z0-9]+", "_", item.name).strip("_")
    folder.mkdir(parents=True)
    ctx = Ctx(folder, people)
    start = time.perf_counter()
    try:
        item.body(ctx)
    except Exception as exc:  # noqa: BLE001  (the benchmark itself broke on this case)
        ctx.problems.append(f"benchmark error: {type(exc).__name__}: {exc}")
    ctx.no_leftovers()
    last = ctx.runs[-1] if ctx.runs else None
    outcome = ctx.outcome or (f"rc={last.rc}: {last.key_line()}" if last else "(not run)")
    return outcome, list(dict.fromkeys(ctx.problems)), time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-k", nargs="*", default=[], help="run only cases whose name contains one of these")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--width", type=int, default=170, help="table width")
    args = parser.parse_args()

    import torch

    from fitter.body import load_body_model
    from fitter.synthetic import sample_cases

    torch.set_num_threads(1)
    people = sample_cases(load_body_model("anny"), 2, "coco17", seed=4, image_size=SIZE)["keypoints"]
    chosen = [c for c in CASES if not args.k or any(k.lower() in c.name.lower() for k in args.k)]
    console = Console(width=args.width)
    base = Path(tempfile.mkdtemp(prefix="fitter-failures-"))
    table = Table(title=f"fitter fit: {len(chosen)} failure cases", show_lines=True)
    for column in ("case", "expectation", "outcome", "pass"):
        table.add_column(column, overflow="fold")
    passed = 0
    try:
        for number, item in enumerate(chosen, 1):
            outcome, problems, seconds = run_case(item, base, people)
            passed += not problems
            verdict = "yes" if not problems else "NO: " + "; ".join(problems)
            print(f"[{number}/{len(chosen)}] {item.name}: {'pass' if not problems else 'FAIL'} ({seconds:.1f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
            table.add_row(*map(Text, (item.name, item.expectation, outcome, verdict)))  # no markup: paths hold [..]
    finally:
        if args.keep:
            print(f"cases kept in {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    console.print(table, markup=False, highlight=False)
    console.print(f"{passed} of {len(chosen)} cases pass", markup=False, highlight=False)
    return 0 if passed == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
