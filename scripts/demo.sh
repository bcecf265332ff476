#!/usr/bin/env bash
# `make demo`: deblur examples/ into out/ with the shipped weights. Until weights ship, it runs
# the untrained pipeline (random weights, seed 0) and says so, so the whole path still runs.
set -euo pipefail
bin=.venv/bin
weights=default
if ! "$bin/python" -c "import sys; from m2aenet.checkpoint import shipped_weights; sys.exit('default' not in shipped_weights())"; then
    weights=out/untrained-m2aenet-s.safetensors
    echo "NOTE: no shipped weights yet (src/m2aenet/weights/default.safetensors);"
    echo "      running the UNTRAINED pipeline with random weights: outputs will not be sharper."
    "$bin/python" - "$weights" <<'PY'
import sys, torch
from m2aenet import create_model, save_model
torch.manual_seed(0)
save_model(sys.argv[1], create_model("m2aenet-s"), {"note": "untrained, for the demo only"})
PY
fi
"$bin/m2aenet" deblur examples/ -o out/ --weights "$weights" --save-mask --overwrite --json out/summary.json
echo "restored images, masks and overlays are in out/"
