"""The training recipe as one command: data sets, training stages and shipping, resumable.

`spec.py` reads and checks a recipe YAML, `datasets.py` makes the data sets it names,
`runner.py` runs its stages and ships the result (`m2aenet recipe`), `predictor_stage.py` runs
a `kind: predictor` stage, `progress.py` says where a stage stands, `bundle.py` packs a recipe
for another machine.
"""
