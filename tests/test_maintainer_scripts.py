"""The maintainer scripts that produced the shipped weights: predictor swap and shipping."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from m2aenet import create_model
from m2aenet.checkpoint import load_model, save_model
from m2aenet.models.mask_predictor import MaskPredictor

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
SMALL = {"channels": 8, "num_blocks": 2, "mask_width": 8, "mask_depth": 1, "analyzer_width": 8}


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkpoint(folder: Path) -> None:
    torch.manual_seed(0)
    model = create_model("m2aenet-s", **SMALL)
    for name in ("model", "ema"):
        save_model(folder / f"{name}.safetensors", model, {"step": 5})


def _predictor_file(path: Path, predictor: torch.nn.Module) -> Path:
    from safetensors.torch import save_file

    state = {"mask_predictor." + k: v.contiguous() for k, v in predictor.state_dict().items()}
    save_file(state, str(path))
    return path


def test_swapping_in_the_models_own_predictor_keeps_every_output(tmp_path: Path) -> None:
    swap = _script("swap_mask_predictor")
    _checkpoint(tmp_path)
    old = load_model(tmp_path / "ema.safetensors")
    own = _predictor_file(tmp_path / "own.safetensors", old.mask_predictor)
    new = swap.swap(str(tmp_path / "ema.safetensors"), own).eval()
    assert new.config.analyzer_stem and not old.config.analyzer_stem
    torch.manual_seed(1)
    x = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        for mask in (None, (torch.rand(1, 1, 32, 40) > 0.5).float()):
            assert torch.equal(new(x, mask=mask).image, old(x, mask=mask).image)


def test_swap_puts_in_a_context_predictor_and_keeps_the_analyzers_input(tmp_path: Path) -> None:
    swap = _script("swap_mask_predictor")
    pretrain = _script("pretrain_mask_predictor")
    _checkpoint(tmp_path)
    old = load_model(tmp_path / "ema.safetensors")
    trained = MaskPredictor(SMALL["mask_width"], SMALL["mask_depth"], context_depth=2)
    pretrain.initial_weights(trained, str(tmp_path / "ema.safetensors"))
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():  # warm start: the zero-initialized branch changes nothing yet
        assert torch.equal(trained(x)[0], old.mask_predictor(x)[0])
        for parameter in trained.parameters():
            parameter.add_(0.01)
    path = _predictor_file(tmp_path / "ctx.safetensors", trained)
    new = swap.swap(str(tmp_path / "ema.safetensors"), path)
    assert new.config.mask_context_depth == 2
    for key, value in trained.state_dict().items():
        assert torch.equal(new.mask_predictor.state_dict()[key], value), key
    for key, value in old.mask_predictor.features.state_dict().items():
        assert torch.equal(new.analyzer_stem.state_dict()[key], value), key
    wrong = MaskPredictor(SMALL["mask_width"] * 2, SMALL["mask_depth"])
    with pytest.raises(SystemExit, match="does not fit"):
        pretrain.initial_weights(wrong, str(tmp_path / "ema.safetensors"))


def test_predictor_training_on_a_pool_scores_and_writes_a_predictor(tmp_path: Path) -> None:
    import numpy as np

    from m2aenet.data.datasets import PairedImageDataset
    from m2aenet.imageio import write_png

    rng = np.random.default_rng(0)
    for index in range(3):
        sharp = rng.uniform(0.1, 0.9, (64, 64, 3)).astype(np.float32)
        mask = np.zeros((64, 64), np.float32)
        mask[16:40, 8:30] = 1
        blur = np.where(mask[..., None] > 0, sharp.mean(axis=(0, 1)), sharp)
        for folder, image in (("sharp", sharp), ("blur", blur), ("mask", mask)):
            write_png(tmp_path / "pool" / folder / f"f{index}.png", image)
    pretrain = _script("pretrain_mask_predictor")
    out = tmp_path / "predictor.safetensors"
    args = pretrain.argparse.Namespace(
        model="m2aenet-s", context_depth=1, init=None, out=out, pool=[tmp_path / "pool"],
        centred_fraction=0.5, hard_negatives=True, val=[tmp_path / "pool"], threshold=0.5,
        steps=3, minutes=None, samples=0, crop=32, batch=2, lr=1e-3, seed=0, threads=1,
        report_every=2,
    )  # fmt: skip
    net = pretrain.train(args)
    scores = pretrain.score(net, PairedImageDataset(tmp_path / "pool", require_mask=True), 0.5, 2)
    assert 0.0 <= scores["iou"] <= 1.0 and scores["marked_over_true"] >= 0.0
    # Everything marked: IoU is the true share of the frame, marked / true its inverse.
    with torch.no_grad():
        net.head.bias.fill_(50.0)
    everything = pretrain.score(
        net, PairedImageDataset(tmp_path / "pool", require_mask=True), 0.5, 2
    )
    assert everything["iou"] == pytest.approx(24 * 22 / 64**2)
    assert everything["marked_over_true"] == pytest.approx(64**2 / (24 * 22))


def test_a_deeper_context_branch_starts_as_the_shallower_one(tmp_path: Path) -> None:
    pretrain = _script("pretrain_mask_predictor")
    torch.manual_seed(0)
    shallow = MaskPredictor(8, 1, context_depth=2)
    with torch.no_grad():
        for parameter in shallow.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.2)  # a non-zero branch
    path = _predictor_file(tmp_path / "shallow.safetensors", shallow)
    deep = MaskPredictor(8, 1, context_depth=4)
    pretrain.initial_weights(deep, str(path))
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert (shallow(x)[0] - deep(x)[0]).abs().max() < 1e-5
        assert shallow.context(torch.rand(2, 8, 16, 16)).abs().sum() > 0


def test_deepening_the_body_keeps_every_output_until_training_moves_it(tmp_path: Path) -> None:
    deepen = _script("deepen_body")
    torch.manual_seed(0)
    old = create_model("m2aenet-s", **SMALL)
    with torch.no_grad():  # trained-looking blocks: a zero last layer would hide a mix-up
        for parameter in old.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_model(tmp_path / "old.safetensors", old, {"step": 5})
    old = load_model(tmp_path / "old.safetensors")
    new = deepen.deepen(str(tmp_path / "old.safetensors"), SMALL["num_blocks"] + 3)
    assert len(new.blocks) == SMALL["num_blocks"] + 3
    x = torch.rand(1, 3, 32, 40)
    mask = (torch.rand(1, 1, 32, 40) > 0.5).float()
    with torch.no_grad():
        for m in (None, mask):
            assert torch.allclose(new(x, mask=m).image, old(x, mask=m).image, atol=1e-6)
        new.reparameterize()
        old.reparameterize()
        assert torch.allclose(new(x, mask=mask).image, old(x, mask=mask).image, atol=1e-5)
    with pytest.raises(SystemExit, match="already has"):
        deepen.deepen(str(tmp_path / "old.safetensors"), 1)


def test_extra_photos_take_one_size_per_wallpaper_and_skip_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    collect = _script("collect_extra_photos")
    images = tmp_path / "wallpapers" / "Kite" / "contents" / "images"
    images.mkdir(parents=True)
    for width in (1280, 3840, 5120):
        Image.new("RGB", (width // 64, 10), (width % 256, 0, 0)).save(images / f"{width}x10.png")
    gnome = tmp_path / "gnome"
    gnome.mkdir()
    (gnome / "vnc-d.webp").write_bytes(b"x" * 10)
    monkeypatch.setattr(collect, "PLASMA", tmp_path / "wallpapers")
    monkeypatch.setattr(collect, "GNOME", gnome)
    assert collect.plasma_pictures() == {"plasma-Kite": images / "3840x10.png"}
    assert collect.gnome_pictures() == {}


def test_derived_weights_keep_the_source_record_and_say_what_was_done(tmp_path: Path) -> None:
    from m2aenet.checkpoint import read_record, save_derived_model

    deepen = _script("deepen_body")
    _checkpoint(tmp_path)
    model = deepen.deepen(str(tmp_path / "ema.safetensors"), SMALL["num_blocks"] + 1)
    path = save_derived_model(
        tmp_path / "deep.safetensors", model, tmp_path / "ema.safetensors", "x"
    )
    record = read_record(path)
    assert record["step"] == 5 and record["made_by"] == "x"
    assert record["model_config"]["num_blocks"] == SMALL["num_blocks"] + 1
    assert len(load_model(path).blocks) == SMALL["num_blocks"] + 1
