"""Pick the mask threshold of trained weights on a validation set (never on the test set).

    python benchmarks/calibrate_threshold.py WEIGHTS VAL_DIR [--thresholds 0.2,0.3,...] [--max-marked 1.5]

Deblurs VAL_DIR (generic layout, e.g. `m2aenet synth --split val --seed 7 --count 16`) once
per threshold with the pruned deploy model and prints PSNR_w, mask IoU, predicted fraction
and ms; the last line names the highest threshold (fewest pixels processed, fastest) whose
PSNR_w is within TIE_DB of the best one (`m2aenet.train.ship`, which `m2aenet recipe` uses),
among those marking at most --max-marked times the truly blurred share when given.
"""

from __future__ import annotations

import argparse

from m2aenet.train.ship import choose_threshold, format_threshold_table, threshold_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("data")
    parser.add_argument("--thresholds", default="0.2,0.3,0.4,0.5,0.6")
    parser.add_argument("--max-marked", type=float, help="cap on marked / truly blurred share")
    args = parser.parse_args()
    rows = threshold_table(args.weights, args.data, args.thresholds.split(","))
    print(format_threshold_table(rows))
    chosen = choose_threshold(rows, args.max_marked)
    best = next(row for row in rows if row.threshold == chosen)
    top = max(row.psnr_w for row in rows)
    print(f"chosen threshold {chosen:.2f} (PSNR_w {best.psnr_w:.3f} dB, best {top:.3f} dB)")


if __name__ == "__main__":
    main()
