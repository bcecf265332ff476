"""The maintainer scripts that produced the shipped weights: predictor, body surgery, photos."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from predictor_helpers import write_pool
from test_multiscale import SMALL as SMALL_MS

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


def _saved_trained_looking(path: Path, name: str, **config) -> torch.nn.Module:
    """A small model with every weight moved off its init (a zero last layer would hide a
    mix-up of blocks), saved to `path` and loaded back."""
    torch.manual_seed(0)
    model = create_model(name, **config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_model(path, model, {"step": 5})
    return load_model(path)


def _predictor_file(path: Path, predictor: torch.nn.Module) -> Path:
    from safetensors.torch import save_file

    state = {"mask_predictor." + k: v.contiguous() for k, v in predictor.state_dict().items()}
    save_file(state, str(path))
    return path


def test_the_predictor_scripts_train_and_swap_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # The logic lives in m2aenet.train.predictor and .predictor_weights (their tests); the
    # scripts are its command line, with the options they had before.
    _checkpoint(tmp_path)
    pool = write_pool(tmp_path / "pool")
    predictor = tmp_path / "predictor.safetensors"
    argv = ["pretrain_mask_predictor.py", "--pool", str(pool), "--val", str(pool)]
    argv += ["--init", str(tmp_path / "ema.safetensors"), "--context-depth", "1"]
    argv += ["--out", str(predictor), "--steps", "2", "--crop", "32", "--batch", "2"]
    monkeypatch.setattr("sys.argv", argv)
    _script("pretrain_mask_predictor").main()
    assert "pool IoU" in capsys.readouterr().out
    out = tmp_path / "swapped.safetensors"
    argv = ["swap_mask_predictor.py", str(tmp_path / "ema.safetensors"), str(predictor)]
    monkeypatch.setattr("sys.argv", [*argv, "--out", str(out)])
    _script("swap_mask_predictor").main()
    assert load_model(out).config.mask_context_depth == 1
    wide = tmp_path / "wide.safetensors"
    monkeypatch.setattr("sys.argv", [*argv[:2], str(wide), "--out", str(out)])
    _predictor_file(wide, MaskPredictor(16, 1))
    with pytest.raises(SystemExit, match="error: .*the predictor does not fit"):
        _script("swap_mask_predictor").main()
    # A new predictor of another shape, from scratch.
    from m2aenet.train.predictor_weights import predictor_tensors

    shaped = tmp_path / "shaped.safetensors"
    argv = ["pretrain_mask_predictor.py", "--pool", str(pool), "--mask-width", "12"]
    argv += ["--mask-depth", "1", "--out", str(shaped), "--steps", "1", "--crop", "32"]
    monkeypatch.setattr("sys.argv", argv)
    _script("pretrain_mask_predictor").main()
    widths = {tensor.shape[0] for tensor in predictor_tensors(shaped).values() if tensor.ndim == 4}
    assert 12 in widths and 16 not in widths  # not the default model's 16 channels
    monkeypatch.setattr("sys.argv", [*argv, "--init", str(tmp_path / "ema.safetensors")])
    with pytest.raises(SystemExit, match="not with --init"):
        _script("pretrain_mask_predictor").main()


def test_deepening_the_body_keeps_every_output_until_training_moves_it(tmp_path: Path) -> None:
    deepen = _script("deepen_body")
    old = _saved_trained_looking(tmp_path / "old.safetensors", "m2aenet-s", **SMALL)
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


def test_deepening_a_multiscale_body_per_level_keeps_every_output(tmp_path: Path) -> None:
    deepen = _script("deepen_body")
    old = _saved_trained_looking(tmp_path / "old.safetensors", "m2aenet-ms", **SMALL_MS)
    new = deepen.deepen(
        str(tmp_path / "old.safetensors"), encoder_blocks=(3, 2), decoder_blocks=(2, 1)
    )
    assert [len(level) for level in new.encoder] == [3, 2]
    assert [len(level) for level in new.decoder] == [2, 1]
    assert torch.equal(new.encoder[0][0].project.weight, old.encoder[0][0].project.weight)
    x = torch.rand(1, 3, 32, 40)
    mask = (torch.rand(1, 1, 32, 40) > 0.5).float()
    with torch.no_grad():
        assert torch.allclose(new(x, mask=mask).image, old(x, mask=mask).image, atol=1e-6)
    with pytest.raises(SystemExit, match="already has"):
        deepen.deepen(str(tmp_path / "old.safetensors"), encoder_blocks=(1, 1))
    with pytest.raises(SystemExit, match="already has"):
        deepen.deepen(str(tmp_path / "old.safetensors"), encoder_blocks=(2,))
    with pytest.raises(SystemExit, match="has no num_blocks"):
        deepen.deepen(str(tmp_path / "old.safetensors"), 4)


def test_trajectory_sampling_grown_into_finer_levels_keeps_every_output(tmp_path: Path) -> None:
    deepen = _script("deepen_body")
    old = _saved_trained_looking(tmp_path / "old.safetensors", "m2aenet-ms", **SMALL_MS)
    assert old.config.trajectory_from_level == 2
    new = deepen.deepen(str(tmp_path / "old.safetensors"), trajectory_from_level=0)
    assert new.config.trajectory_from_level == 0
    assert all(block.samples_trajectory for block in new.encoder[0])
    x = torch.rand(1, 3, 32, 40)
    mask = (torch.rand(1, 1, 32, 40) > 0.5).float()
    with torch.no_grad():
        assert torch.allclose(new(x, mask=mask).image, old(x, mask=mask).image, atol=1e-6)
        new.reparameterize()
        old.reparameterize()
        assert torch.allclose(new(x, mask=mask).image, old(x, mask=mask).image, atol=1e-5)
    with pytest.raises(SystemExit, match="samples from level 2 already"):
        deepen.deepen(str(tmp_path / "old.safetensors"), trajectory_from_level=2)


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


def test_more_photos_take_the_largest_embedded_jpeg_and_only_named_photos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from PIL import Image

    collect = _script("collect_extra_photos")

    def jpeg(width: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (width, 8), (200, 10, 10)).save(buffer, "JPEG")
        return buffer.getvalue()

    backgrounds = tmp_path / "backgrounds"
    backgrounds.mkdir()
    # An archive: header bytes, a stray JPEG marker, a small and a large stream.
    archive = b"EET" + collect.JPEG_START + b"junk" + jpeg(16) + b"\0" * 7 + jpeg(48) + b"tail"
    (backgrounds / "Mountain.edj").write_bytes(archive)
    (backgrounds / "Squiggle.edj").write_bytes(b"no pictures here")
    lxqt = tmp_path / "lxqt"
    lxqt.mkdir()
    for name in ("fog.jpg", "triangles.png", "License"):
        (lxqt / name).write_bytes(b"x")
    monkeypatch.setattr(collect, "ENLIGHTENMENT", backgrounds)
    monkeypatch.setattr(collect, "LXQT", lxqt)
    found = collect.enlightenment_pictures()
    assert list(found) == ["enlightenment-Mountain"]
    assert found["enlightenment-Mountain"].size == (48, 8)
    assert collect.largest_embedded_jpeg(backgrounds / "Squiggle.edj") is None
    assert collect.lxqt_pictures() == {"lxqt-fog": lxqt / "fog.jpg"}


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
