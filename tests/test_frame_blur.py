"""frame_blur_extent, the image-level camera-shake evidence, and the whole-frame decision."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage import data as skimage_data

from m2aenet.api import Deblurrer
from m2aenet.errors import ConfigError
from m2aenet.limits import MAX_FRAME_BLUR_EXTENT
from m2aenet.models.frame_blur import MAX_EXTENT, frame_blur_extent
from m2aenet.registry import create_model

SMALL = {"widths": (8, 16, 16), "mask_width": 8, "trajectory_channels": 4, "analyzer_width": 8}


def _photo() -> torch.Tensor:
    """(1, 3, 256, 256): a real, sharp photo (scikit-image's astronaut, halved)."""
    rgb = torch.from_numpy(skimage_data.astronaut().astype(np.float32) / 255.0)
    return F.avg_pool2d(rgb.permute(2, 0, 1)[None], 2)


def _shaken(image: torch.Tensor, length: int) -> torch.Tensor:
    """A horizontal box blur of `length` px over the whole frame (camera shake)."""
    kernel = torch.full((3, 1, 1, length), 1.0 / length)
    padded = F.pad(image, (length // 2, (length - 1) // 2, 0, 0), mode="replicate")
    return F.conv2d(padded, kernel, groups=3)


def test_camera_shake_raises_the_extent_and_a_sharp_photo_keeps_it_low() -> None:
    photo = _photo()
    sharp = float(frame_blur_extent(photo))
    shaken = float(frame_blur_extent(_shaken(photo, 15)))
    assert sharp < 2.0
    assert shaken > sharp + 2.5
    assert float(frame_blur_extent(_shaken(photo, 31))) > shaken  # longer shake, longer extent


def test_a_frame_with_sharp_parts_left_is_not_shaken() -> None:
    """Local blur (the left half smeared) leaves sharp tiles: the frame reads as sharp."""
    photo = _photo()
    local = photo.clone()
    local[..., :128] = _shaken(photo, 15)[..., :128]
    extent = float(frame_blur_extent(local))
    assert extent < float(frame_blur_extent(photo)) + 0.5
    assert extent < float(frame_blur_extent(_shaken(photo, 15))) - 2.0


def test_the_extent_does_not_depend_on_contrast_or_batch_company() -> None:
    photo = _photo()
    shaken = _shaken(photo, 15)
    faded = 0.5 + 0.4 * (shaken - 0.5)
    both = frame_blur_extent(torch.cat([photo, shaken, faded]))
    assert both[1].item() == pytest.approx(both[2].item(), abs=0.1)
    assert both[0].item() == pytest.approx(frame_blur_extent(photo).item(), abs=1e-6)


def test_no_evidence_gives_zero() -> None:
    """Flat, too small, or mostly flat: a shaken subject on a plain wall is the local mask's."""
    assert frame_blur_extent(torch.full((2, 3, 96, 96), 0.4)).tolist() == [0.0, 0.0]
    on_a_wall = torch.full((1, 3, 256, 256), 0.6)
    on_a_wall[..., 96:160, 96:160] = _shaken(_photo(), 21)[..., 96:160, 96:160]
    assert frame_blur_extent(on_a_wall).tolist() == [0.0]
    assert frame_blur_extent(torch.rand(1, 3, 40, 300)).tolist() == [0.0]  # under a tile
    with pytest.raises(ValueError, match=r"image must have shape \(B, 3, H, W\)"):
        frame_blur_extent(torch.rand(3, 64, 64))


def test_large_frames_are_measured_at_the_working_size() -> None:
    """Blur counts relative to the frame: a 1280-px shaken frame reads as its 640-px copy."""
    large = _shaken(F.interpolate(_photo(), size=(1280, 1280), mode="bilinear"), 24)
    small = F.interpolate(large, size=(640, 640), mode="area")
    assert float(frame_blur_extent(large)) == pytest.approx(
        float(frame_blur_extent(small)), abs=1e-3
    )
    assert float(frame_blur_extent(large)) > 3.0


def _train_and_deploy(model: torch.nn.Module, x: torch.Tensor) -> tuple:
    """The outputs of `model` on x as it is and reparameterized (deploy mode, pixel executor)."""
    with torch.no_grad():
        train_out = model(x)
        deployed = copy.deepcopy(model).reparameterize()
        deployed.executor = "pixel"
        return train_out, deployed(x)


def test_a_shaken_frame_is_restored_whole_in_train_and_deploy_mode() -> None:
    """whole_frame_extent: the shaken frame gets a full mask whatever the predictor marked;
    the sharp one keeps exactly its predicted mask (and its outside pixels)."""
    photo = _photo()
    x = torch.cat([photo, _shaken(photo, 21)])
    torch.manual_seed(0)
    model = create_model("m2aenet-ms", **SMALL)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    model.eval()
    decided = copy.deepcopy(model)
    decided.whole_frame_extent = 4.5
    with torch.no_grad():
        plain = model(x)
    train_out, deploy_out = _train_and_deploy(decided, x)
    assert plain.mask[1].mean() < 1.0  # the predictor alone did not mark it all
    assert train_out.mask[1].min() == 1.0
    assert torch.equal(train_out.mask[0], plain.mask[0])
    assert torch.equal(train_out.image[0], plain.image[0])
    assert torch.equal(deploy_out.mask, train_out.mask)
    torch.testing.assert_close(deploy_out.image, train_out.image, atol=1e-5, rtol=0)


@pytest.mark.parametrize("value", [-1.0, MAX_EXTENT + 1.0])
def test_whole_frame_extent_is_checked(value: float) -> None:
    with pytest.raises(ConfigError, match=r"whole_frame_extent must be in \[0, 28.28\d*\] px"):
        create_model("m2aenet-ms", whole_frame_extent=value)
    with pytest.raises(ConfigError, match=r"whole_frame_extent must be in \[0, 28.28\d*\] px"):
        create_model("m2aenet-s2", whole_frame_extent=value)


def test_the_limit_used_before_torch_loads_is_the_model_s() -> None:
    assert MAX_FRAME_BLUR_EXTENT == pytest.approx(MAX_EXTENT, abs=1e-12)


def test_deblurrer_whole_frame_extent_restores_a_shaken_photo_whole() -> None:
    """The shipped weights decide (3.5 px): the shaken photo is restored everywhere; with the
    decision off it is not, and the sharp photo keeps its own mask; bad values are refused."""
    photo = _photo()
    shaken = _shaken(photo, 21)[0].permute(1, 2, 0).numpy()
    sharp = photo[0].permute(1, 2, 0).numpy()
    plain = Deblurrer.from_pretrained(
        "default", device="cpu", count_flops=False, whole_frame_extent=0
    )
    deciding = Deblurrer.from_pretrained("default", device="cpu", count_flops=False)
    assert deciding.model.whole_frame_extent == 3.5
    assert not plain.restore(shaken)[1].all()
    assert deciding.restore(shaken)[1].all()
    assert np.array_equal(deciding.restore(sharp)[1], plain.restore(sharp)[1])
    for bad in (-0.5, float("inf"), "3", True):
        with pytest.raises(ConfigError, match="whole_frame_extent"):
            Deblurrer.from_pretrained("default", device="cpu", whole_frame_extent=bad)


def test_exported_graphs_leave_the_whole_frame_decision_out() -> None:
    """OnnxGraph (what `m2aenet export` traces) runs without the decision and restores it after."""
    from m2aenet.export import OnnxGraph

    shaken = _shaken(_photo(), 21)
    model = Deblurrer.from_pretrained("default", device="cpu", count_flops=False).model
    with torch.no_grad():
        _, mask = OnnxGraph(model).eval()(shaken)
        deciding = model(shaken).mask
    assert deciding.min() == 1.0 and mask.min() == 0.0
    assert model.whole_frame_extent == 3.5


def test_the_defocus_veto_unmarks_defocused_cells_in_train_and_deploy_mode() -> None:
    """mask_defocus_veto: a predictor that marks everything keeps its marks on the sharp photo
    and loses them where the photo is defocused; deploy mode agrees."""
    photo = _photo()
    defocused = photo.clone()
    defocused[..., :, 128:] = F.avg_pool2d(
        F.pad(photo[..., :, 128:], (4, 4, 4, 4), mode="replicate"), 9, stride=1
    )  # the right half out of focus
    torch.manual_seed(0)
    model = create_model("m2aenet-ms", **SMALL).eval()
    with torch.no_grad():
        model.mask_predictor.head.bias.fill_(20.0)  # p ~ 1: everything marked
    vetoing = copy.deepcopy(model)
    vetoing.defocus_veto = 1.5
    with torch.no_grad():
        plain = model(defocused)
    out, deploy_out = _train_and_deploy(vetoing, defocused)
    assert plain.mask.min() == 1.0
    assert out.mask[..., 16:-16, 16:112].mean() > 0.95  # the sharp half stays marked
    # the defocused half is left alone where it has edges (flat cells get no verdict)
    assert out.mask[..., 16:-16, 144:-16].mean() < 0.5
    assert torch.equal(deploy_out.mask, out.mask)
    torch.testing.assert_close(deploy_out.image, out.image, atol=1e-5, rtol=0)


@pytest.mark.parametrize("value", [-0.5, 12.0])
def test_the_defocus_veto_is_checked(value: float) -> None:
    for name in ("m2aenet-ms", "m2aenet-s2"):
        with pytest.raises(ConfigError, match=r"mask_defocus_veto must be in \[0, 12\) px"):
            create_model(name, mask_defocus_veto=value)


def test_deblurrer_defocus_veto_sets_the_model_and_refuses_bad_values() -> None:
    veto = Deblurrer.from_pretrained("default", device="cpu", count_flops=False, defocus_veto=1.5)
    assert veto.model.defocus_veto == 1.5
    plain = Deblurrer.from_pretrained("default", device="cpu", count_flops=False)
    assert plain.model.defocus_veto == 0.0  # the shipped weights' own: off
    for bad in (-1.0, 12.0, float("nan"), True, "1.5"):
        with pytest.raises(ConfigError, match="defocus_veto"):
            Deblurrer.from_pretrained("default", device="cpu", count_flops=False, defocus_veto=bad)
