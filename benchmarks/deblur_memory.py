"""Peak memory of `m2aenet deblur` against image size, with and without tiling.

Each measurement runs `m2aenet deblur` in its own process (niced, one thread) on a generated
PNG and reads that process's peak resident set size from `os.wait4`. Sizes whose untiled run
the command refuses up front (not enough memory) are reported as refused, with its message.

    PYTHONPATH=src python benchmarks/deblur_memory.py --sizes 1,4,16,64 --json mem.json

Images are smooth gradients with a small textured patch, so the mask is small and each run
is short: the table shows what the image costs beyond the network, which tiling bounds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_image(path: Path, megapixels: float) -> tuple[int, int]:
    """A 4:3 RGB PNG of about `megapixels`, written a band of rows at a time; (width, height)."""
    width = int(round((megapixels * 1e6 * 4 / 3) ** 0.5))
    height = int(round(megapixels * 1e6 / width))
    column = np.linspace(40, 200, width, dtype=np.float32)
    rows = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[..., 0] = column[None, :].astype(np.uint8)
    pixels[..., 1] = (rows * 150 + 50).astype(np.uint8)
    pixels[..., 2] = 120
    rng = np.random.default_rng(0)
    patch = min(256, height // 4, width // 4)
    pixels[height // 2 : height // 2 + patch, width // 2 : width // 2 + patch] = rng.integers(
        0, 256, (patch, patch, 3), dtype=np.uint8
    )
    Image.fromarray(pixels).save(path, compress_level=1)
    return width, height


def measure(image: Path, out: Path, tile: str | None, weights: str) -> dict:
    """Run one `m2aenet deblur`; returns peak RSS (MB), seconds, exit code and its last line."""
    command = [sys.executable, "-m", "m2aenet", "deblur", str(image), "-o", str(out)]
    command += ["--weights", weights, "--device", "cpu", "--no-progress", "--overwrite"]
    if tile is not None:
        command += ["--tile", tile]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    process = subprocess.Popen(
        ["nice", "-n", "19", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
        text=True,
    )
    # nice execs the command in the same process, so wait4 sees the deblur process itself.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    output = process.stdout.read() + process.stderr.read()
    lines = [line for line in output.splitlines() if line.strip()]
    return {
        "peak_mb": usage.ru_maxrss / 1024.0,  # ru_maxrss is in KiB on Linux
        "seconds": time.perf_counter() - start,
        "code": process.returncode,
        "last_line": lines[-1] if lines else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,36,64", help="megapixels, comma-separated")
    parser.add_argument("--untiled-up-to", type=float, default=16.0, help="largest untiled MP")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for megapixels in (float(text) for text in args.sizes.split(",")):
            image = Path(work) / f"in_{megapixels:g}.png"
            width, height = make_image(image, megapixels)
            settings = [("auto", None)]
            if megapixels <= args.untiled_up_to:
                settings.append(("off", "0"))
            for label, tile in settings:
                result = measure(image, Path(work) / "out", tile, args.weights)
                row = {"megapixels": megapixels, "size": f"{width}x{height}", "tiling": label}
                rows.append({**row, **result})
                print(
                    f"{megapixels:6g} MP {width}x{height:<6} tiling {label:<4} "
                    f"peak {result['peak_mb']:8.0f} MB  {result['seconds']:6.1f} s  "
                    f"exit {result['code']}  {result['last_line'][:90]}",
                    flush=True,
                )
            image.unlink()
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
