# Issue 18 + 19 probes in one slot, three side by side (1 thread each, ~2/3 of a core each):
#  ms-old:     m2aenet-ms (bf16) on the old engine          \ issue 18: body v2 vs
#  stage4-old: stage-4 m2aenet-s (fp32, today's step), same  / today's design and step
#  ms-real:    m2aenet-ms (bf16) on --realism data            issue 19: new data vs old
# 400 frames each (20% camera shake), 45 minutes each.
source .venv/bin/activate
export GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
SCORE="--score data/val-local --score data/val-moderate --score data/val-global"
python scripts/probe_recipe.py configs/ms.yaml threads=1 steps=2500 data.train.root=data/pool-old400 \
    --out runs/p2-ms-old --minutes 45 $SCORE > runs/p2-ms-old.log 2>&1 &
python scripts/probe_recipe.py configs/ms.yaml threads=1 steps=2500 data.train.root=data/pool-realism \
    --out runs/p2-ms-real --minutes 45 $SCORE > runs/p2-ms-real.log 2>&1 &
python scripts/probe_recipe.py configs/ms.yaml threads=1 steps=1300 amp=none data.train.root=data/pool-old400 \
    model.name=m2aenet-s \
    'model.overrides={body_scale: 2, channels: 48, trajectory_channels: 16, analyzer_stem: true, mask_context_depth: 3}' \
    loss.reblur_scale=1 loss.reblur_density=4 \
    --out runs/p2-stage4-old --minutes 45 $SCORE > runs/p2-stage4-old.log 2>&1 &
wait
for arm in ms-old ms-real; do
  OMP_NUM_THREADS=2 python scripts/score_real_devset.py --weights runs/p2-$arm/final_ema.safetensors \
      --out runs/p2-$arm/devset > runs/p2-$arm/devset.log 2>&1
done
