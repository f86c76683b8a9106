"""Big photos through `fitter fit`: wall time and peak memory of the whole process tree.

Run:  python benchmarks/big_photos.py [--only 48mp folder] [--count 100] [--keep] [-- extra fit args]

(a) one 48 MP photo (8000x6000 JPEG: examples/data/anny_walk.png, a rendered person mediapipe
    detects, upscaled x7.5 and widened with its own background) fitted by `fitter fit` on the
    defaults (mediapipe detection, lifter start, silhouette term, default preset);
(b) a folder of `--count` 12 MP photos (4000x3000 JPEGs: the same person upscaled x3.75, at other
    places across the frame, mirrored every other photo, brightness varied) fitted in one run.

Each run is `python -m fitter.cli.main fit ...` in a subprocess. Wall time is the whole command
(start-up and body-model load included); "fitter s" is the time fitter's summary reports (reading,
detection, fitting, writing). Peak RSS is the largest of: the sum of VmRSS over the process and its
descendants polled from /proc every 20 ms, their VmHWM, and `/usr/bin/time -v`'s maximum resident
set size (when present). Targets: 48 MP <= 15 s and <= 3 GB; the folder <= 3 GB.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "examples" / "data" / "anny_walk.png"
GB = 1024**3


def make_photo(size: tuple[int, int], place: float = 0.5, mirror: bool = False, gain: float = 1.0,
               person: np.ndarray | None = None) -> np.ndarray:  # fmt: skip
    """(H,W,3) BGR: the example person scaled to the photo's height, at `place` (0 left .. 1 right)
    of the free width, widened with its edge pixels (the background is a vertical gradient)."""
    width, height = size
    if person is None:
        source = cv2.imread(str(SOURCE))
        person = cv2.resize(
            source, (round(source.shape[1] * height / source.shape[0]), height), interpolation=cv2.INTER_CUBIC
        )
    free = max(0, width - person.shape[1])
    left = round(free * place)
    image = cv2.copyMakeBorder(person, 0, 0, left, free - left, cv2.BORDER_REPLICATE)
    if mirror:
        image = image[:, ::-1]
    if gain != 1.0:
        image = cv2.convertScaleAbs(image, alpha=gain)
    return np.ascontiguousarray(image)


def _tree(root: int) -> list[int]:
    """root and its descendants (from /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
                parents.setdefault(int(fields[1]), []).append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, []))
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(args: list[str], cwd: Path, timeout: float = 3600) -> dict:
    """Run `fitter fit args` in cwd; wall s, peak RSS bytes (process tree), exit code, output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, "-m", "fitter.cli.main", "fit", *map(str, args)]
    timer = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    report = cwd / "time.txt"
    if timer:
        command = [timer, "-v", "-o", str(report), *command]
    peak = {"tree": 0, "hwm": 0}
    samples: list[tuple[float, int]] = []  # (seconds, tree RSS bytes)
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            pids = _tree(proc.pid)
            samples.append((time.perf_counter() - start, sum(_status_kb(pid, "VmRSS") for pid in pids) * 1024))
            peak["tree"] = max(peak["tree"], samples[-1][1])
            peak["hwm"] = max([peak["hwm"], *(_status_kb(pid, "VmHWM") * 1024 for pid in pids)])
            done.wait(0.02)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    output, _ = proc.communicate(timeout=timeout)
    wall = time.perf_counter() - start
    done.set()
    watcher.join()
    maxrss = 0
    if timer and report.exists():
        hit = re.search(r"Maximum resident set size \(kbytes\): (\d+)", report.read_text())
        maxrss = int(hit.group(1)) * 1024 if hit else 0
    seconds = re.search(r"failed in ([\d.]+) s", output)
    quarters = [max([rss for t, rss in samples if q * wall / 4 <= t < (q + 1) * wall / 4], default=0) for q in range(4)]
    return {"rc": proc.returncode, "wall": wall, "peak": max(peak["tree"], peak["hwm"], maxrss), "polled": peak["tree"],
            "maxrss": maxrss, "quarters": quarters, "fitter_s": float(seconds.group(1)) if seconds else float("nan"), "output": output}  # fmt: skip


def summary_line(output: str) -> str:
    return next((line.strip() for line in output.splitlines() if " fitted, " in line), output.strip().splitlines()[-1:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=["48mp", "folder"], choices=["48mp", "folder"])
    parser.add_argument("--count", type=int, default=100, help="photos in the 12 MP folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("fit_args", nargs="*", help="extra `fitter fit` arguments (after --)")
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="fitter-big-"))
    rows = []
    ok = True
    try:
        if "48mp" in args.only:
            photo = base / "big48.jpg"
            cv2.imwrite(str(photo), make_photo((8000, 6000)), [cv2.IMWRITE_JPEG_QUALITY, 92])
            res = measure([photo.name, "--out", "out48", *args.fit_args], base)
            met = res["rc"] == 0 and res["wall"] <= 15 and res["peak"] <= 3 * GB
            ok &= met
            rows.append(("48 MP (8000x6000), 1 photo", res, "<= 15 s, <= 3 GB", met))
            print(f"48 MP: rc={res['rc']} wall {res['wall']:.1f} s peak {res['peak'] / GB:.2f} GB; "
                  f"{summary_line(res['output'])}", file=sys.stderr, flush=True)  # fmt: skip
        if "folder" in args.only:
            folder = base / "photos12"
            folder.mkdir()
            source = cv2.imread(str(SOURCE))
            person = cv2.resize(
                source, (round(source.shape[1] * 3000 / source.shape[0]), 3000), interpolation=cv2.INTER_CUBIC
            )
            for i in range(args.count):
                image = make_photo((4000, 3000), place=(i * 0.137) % 1.0, mirror=bool(i % 2), gain=0.9 + 0.2 * (i % 5) / 4,
                                   person=person)  # fmt: skip
                cv2.imwrite(str(folder / f"photo_{i:03d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
            res = measure([folder.name, "--out", "out12", *args.fit_args], base)
            met = res["rc"] == 0 and res["peak"] <= 3 * GB
            ok &= met
            rows.append((f"{args.count} x 12 MP (4000x3000), one run", res, "<= 3 GB", met))
            print(f"folder: rc={res['rc']} wall {res['wall']:.1f} s peak {res['peak'] / GB:.2f} GB; "
                  f"{summary_line(res['output'])}", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    table = Table(title="fitter fit on big photos (1 torch thread; wall = the whole command)")
    for column in (
        "run",
        "exit",
        "wall s",
        "fitter s",
        "per photo s",
        "peak RSS GB",
        "peak per quarter of the run GB",
        "target",
        "met",
        "summary",
    ):
        table.add_column(column, overflow="fold")
    for name, res, target, met in rows:
        count = 1 if name.startswith("48") else args.count
        table.add_row(*map(Text, (name, str(res["rc"]), f"{res['wall']:.1f}", f"{res['fitter_s']:.1f}",
                                  f"{res['fitter_s'] / count:.2f}", f"{res['peak'] / GB:.2f}",
                                  " ".join(f"{q / GB:.2f}" for q in res["quarters"]), target,
                                  "yes" if met else "NO", summary_line(res["output"]).split(";")[0])))  # fmt: skip
    Console(width=170).print(table)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
