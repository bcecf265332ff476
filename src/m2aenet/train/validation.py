"""Validation during training: the EMA model on the fixed validation set, scored by `evaluate`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from m2aenet.evaluation import evaluate

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


def validate(model: nn.Module, dataset: Dataset, device: torch.device) -> dict[str, Any]:
    """Mean metrics of `model` (eval mode) on `dataset`, plus the blurry input's PSNR/PSNR_w.

    Returns {"psnr", "ssim", "psnr_w", "ssim_w", "mask_iou", "mask_f1", "pred_fraction",
    "input_psnr", "input_psnr_w", "n"} (keys a data set cannot define are nan).
    """
    was_training = model.training
    model.eval()
    try:
        report = evaluate(model_restore(model, device), dataset, progress=False)
    finally:
        model.train(was_training)
    row = {key: report.mean.get(key, float("nan")) for key in VAL_KEYS}
    row["input_psnr"] = report.input_mean.get("psnr", float("nan"))
    row["input_psnr_w"] = report.input_mean.get("psnr_w", float("nan"))
    row["n"] = report.mean["n"]
    return row
