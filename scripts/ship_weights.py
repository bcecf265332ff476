"""Copy a finished run's EMA weights into the package as shipped weights.

    python scripts/ship_weights.py RUN_DIR [--name default] [--threshold T] [--note TEXT]
        [--whole-frame-fraction F] [--as REGISTERED_NAME]

Writes src/m2aenet/weights/NAME.safetensors and NAME.json (`m2aenet.train.ship.ship_run`):
the run's final_ema record, with `model_config.mask_threshold` set to the calibrated threshold
(benchmarks/calibrate_threshold.py) and a `training` summary for docs and users.
`m2aenet recipe` does the same into its own folder, calibrating on the way.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from m2aenet.checkpoint import WEIGHTS_DIR, load_model
from m2aenet.train.ship import ship_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--name", default="default")
    parser.add_argument("--threshold", type=float)
    parser.add_argument("--note", default="")
    parser.add_argument("--whole-frame-fraction", type=float)
    parser.add_argument(
        "--as", dest="registered_as", help="the registered name of the shipped architecture"
    )
    args = parser.parse_args()
    target = ship_run(
        args.run,
        WEIGHTS_DIR / f"{args.name}.safetensors",
        args.threshold,
        args.note,
        whole_frame_fraction=args.whole_frame_fraction,
        registered_as=args.registered_as,
    )
    shipped = load_model(args.name)  # the shipped pair must load as users will load it
    print(f"shipped {target} ({target.stat().st_size / 1e6:.1f} MB), threshold "
          f"{shipped.mask_threshold}")  # fmt: skip


if __name__ == "__main__":
    main()
