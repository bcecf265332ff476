#!/usr/bin/env bash
# `make demo`: deblur examples/ into out/ with the shipped weights (src/m2aenet/weights/default).
set -euo pipefail
.venv/bin/m2aenet deblur examples/ -o out/ --save-mask --overwrite --json out/summary.json
echo "restored images, masks and overlays are in out/"
