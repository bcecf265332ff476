"""Pick the mask threshold of trained weights on a validation set (never on the test set).

    python benchmarks/calibrate_threshold.py WEIGHTS VAL_DIR [--thresholds 0.2,0.3,...]

Deblurs VAL_DIR (generic layout, e.g. `m2aenet synth --split val --seed 7 --count 16`) once
per threshold with the pruned deploy model and prints PSNR_w, mask IoU, predicted fraction
and ms; the last line names the highest threshold (fewest pixels processed, fastest) whose
PSNR_w is within TIE_DB of the best one: differences that small are noise, not quality.
"""

from __future__ import annotations

import argparse

from m2aenet.api import Deblurrer
from m2aenet.data.datasets import open_dataset
from m2aenet.evaluation import deblurrer_restore, evaluate

TIE_DB = 0.01


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights")
    parser.add_argument("data")
    parser.add_argument("--thresholds", default="0.2,0.3,0.4,0.5,0.6")
    args = parser.parse_args()
    dataset = open_dataset(args.data, "generic", crop_size=None, augment=False)
    deblurrer = Deblurrer.from_pretrained(args.weights, device="cpu", count_flops=False)
    results = []
    print("threshold  psnr_w  input_psnr_w  mask_iou  pred_fraction  ms")
    for threshold in sorted(float(text) for text in args.thresholds.split(",")):
        deblurrer.model.mask_threshold = threshold
        report = evaluate(deblurrer_restore(deblurrer), dataset, progress=False)
        mean, before = report.mean, report.input_mean
        print(f"{threshold:9.2f}  {mean['psnr_w']:6.3f}  {before['psnr_w']:12.3f}  "
              f"{mean.get('mask_iou', float('nan')):8.3f}  "
              f"{mean.get('pred_fraction', float('nan')):13.4f}  {mean['ms']:5.0f}")  # fmt: skip
        results.append((threshold, mean["psnr_w"]))
    top = max(psnr_w for _, psnr_w in results)
    best = max((t, p) for t, p in results if p >= top - TIE_DB)
    print(f"chosen threshold {best[0]:.2f} (PSNR_w {best[1]:.3f} dB, best {top:.3f} dB)")


if __name__ == "__main__":
    main()
