#!/usr/bin/env bash
# `make demo`: deblur examples/ into out/ with the shipped weights (src/m2aenet/weights/default).
set -euo pipefail
.venv/bin/m2aenet deblur examples/ -o out/ --save-mask --compare --overwrite --json out/summary.json
echo "restored images, masks, overlays and before/after pictures (NAME_compare.png) are in out/"
