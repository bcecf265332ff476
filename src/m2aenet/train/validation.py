"""Validation during training: the EMA model on the fixed validation set, scored by `evaluate`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from m2aenet.evaluation import evaluate
from m2aenet.imageio import to_uint8
from m2aenet.metrics import mean_metrics, psnr

#: Mean metrics copied into the log's validation rows.
VAL_KEYS = ("psnr", "ssim", "psnr_w", "ssim_w", "mask_iou", "mask_f1", "pred_fraction")


def model_restore(model: nn.Module, device: torch.device):
    """Adapt a model to `evaluate`'s `restore(blur (H, W, 3) float32) -> (image, mask, stats)`.

    Runs in float32 without autocast, so validation numbers do not depend on the AMP setting.
    """

    @torch.no_grad()
    def restore(blur: np.ndarray) -> tuple[np.ndarray, np.ndarray, Mapping[str, float]]:
        x = torch.from_numpy(np.ascontiguousarray(blur)).permute(2, 0, 1)[None].to(device)
        output = model(x)
        image = output.image[0].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
        mask = output.mask[0, 0].cpu().numpy() > 0.5
        return image, mask, {}

    return restore


@torch.no_grad()
def psnr_w_with_true_mask(model: nn.Module, dataset: Dataset, device: torch.device) -> float:
    """Mean PSNR_w when the body restores through the ground-truth mask.

    Separates the body's progress from the mask predictor's: early in training the predicted
    mask is empty and the ordinary PSNR_w equals the input's whatever the body has learned.
    """
    rows = []
    for index in range(len(dataset)):
        item = dataset[index]
        blur, mask = item["blur"][None].to(device), item["mask"][None].to(device)
        image = model(blur, mask=mask).image[0].float().clamp(0, 1).permute(1, 2, 0).cpu()
        sharp = item["sharp"].permute(1, 2, 0).numpy()
        value = psnr(to_uint8(image.numpy()), to_uint8(sharp), mask=item["mask"][0].numpy() > 0.5)
        rows.append({"psnr_w": value})
    # The evaluation's averaging rule: finite values averaged, inf only if every image is inf.
    return float(mean_metrics(rows).get("psnr_w", float("nan")))


def validate(model: nn.Module, dataset: Dataset, device: torch.device) -> dict[str, Any]:
    """Mean metrics of `model` (eval mode) on `dataset`, plus the blurry input's PSNR/PSNR_w.

    Returns {"psnr", "ssim", "psnr_w", "ssim_w", "mask_iou", "mask_f1", "pred_fraction",
    "psnr_w_true_mask", "input_psnr", "input_psnr_w", "n"} (keys a data set cannot define are
    nan).
    """
    was_training = model.training
    model.eval()
    try:
        report = evaluate(model_restore(model, device), dataset, progress=False)
        true_mask_psnr_w = psnr_w_with_true_mask(model, dataset, device)
    finally:
        model.train(was_training)
    row = {key: report.mean.get(key, float("nan")) for key in VAL_KEYS}
    row["psnr_w_true_mask"] = true_mask_psnr_w
    row["input_psnr"] = report.input_mean.get("psnr", float("nan"))
    row["input_psnr_w"] = report.input_mean.get("psnr_w", float("nan"))
    row["n"] = report.mean["n"]
    return row
