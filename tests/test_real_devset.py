"""The real development set and its scoring script: regions, scores, consistency."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _script():
    path = ROOT / "scripts" / "score_real_devset.py"
    spec = importlib.util.spec_from_file_location("score_real_devset", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regions_are_rasterized_as_filled_polygons() -> None:
    score = _script()
    square = {"size": [20, 10], "polygons": [[[2, 2], [7, 2], [7, 6], [2, 6]]], "whole": False}
    mask = score.rasterize(square)
    assert mask.shape == (10, 20) and mask[2:7, 2:8].all() and mask.sum() == 5 * 6
    assert score.rasterize({"size": [4, 3], "polygons": [], "whole": True}).all()


def test_recall_and_precision_count_marks_near_the_region() -> None:
    score = _script()
    truth = np.zeros((20, 20), dtype=bool)
    truth[5:10, 5:10] = True
    predicted = np.zeros_like(truth)
    predicted[5:10, 5:8] = True  # 15 of the 25 region pixels
    predicted[5:10, 11] = True  # 5 marks 2 px from the region: near
    predicted[0, 19] = True  # 1 mark far away
    found = score.mask_scores(predicted, truth, near=3)
    assert found["recall"] == 15 / 25
    assert found["precision"] == 20 / 21
    assert score.mask_scores(predicted, truth, near=0)["precision"] == 15 / 21
    assert math.isnan(score.mask_scores(np.zeros_like(truth), truth, near=3)["precision"])


def test_the_committed_devset_is_consistent() -> None:
    devset = ROOT / "devset" / "real"
    regions = json.loads((devset / "regions.json").read_text())
    blurred = {p.stem: p for p in (devset / "blurred").iterdir()}
    assert set(blurred) == set(regions) and "clock" in regions
    for name, region in regions.items():
        with Image.open(blurred[name]) as image:
            assert list(image.size) == region["size"], name
            assert max(image.size) <= 640
        assert region["whole"] or region["polygons"], name
    sharp = list((devset / "sharp").iterdir())
    assert len(sharp) >= 5
    assert not {p.stem for p in sharp} & set(regions)
