"""The Python API: `Deblurrer` on every input type, exactness outside the mask, tiling (api.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from m2aenet.api import LUMA_WEIGHTS, Deblurrer, Result, compose
from m2aenet.checkpoint import save_model
from m2aenet.errors import CheckpointError, ConfigError, InputError
from m2aenet.registry import create_model

HEIGHT, WIDTH = 48, 64
MODEL = "m2aenet-s"
# A small m2aenet-s: the tests exercise the product around the network, not its quality.
SMALL = {
    "channels": 8,
    "num_blocks": 2,
    "trajectory_points": 2,
    "trajectory_channels": 4,
    "mask_width": 8,
    "analyzer_width": 8,
    "analyzer_levels": 1,
}


def random_model(**overrides: object) -> torch.nn.Module:
    """A small model (train mode) with random weights, the same on every call.

    The default initialisation returns almost exactly the input (its head starts near zero);
    weights drawn with std 0.1 restore visibly (mean |output - input| about 0.1 inside the
    mask) and still vary the blur probability enough for a threshold to split the image.
    """
    torch.manual_seed(0)
    model = create_model(MODEL, **{**SMALL, **overrides}).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.1)
    return model


def picture(seed: int = 0, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A smooth colourful picture with some noise, float32 (H, W, 3) in [0, 1]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 + 0.5 * np.sin(xx / 5.0 + seed)], axis=2)
    noise = rng.normal(0.0, 0.05, size=base.shape).astype(np.float32)
    return np.clip(base + noise, 0.0, 1.0)


def _mask_fraction_threshold(model: torch.nn.Module, rgb: np.ndarray, keep: float) -> float:
    """A threshold under which about `keep` of the pixels of `rgb` have higher blur probability.

    Random weights give an arbitrary probability map; choosing the threshold from it makes the
    tests see a mask that is neither empty nor full.
    """
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        prob = model(x).mask_prob
    return float(torch.quantile(prob.flatten(), 1.0 - keep))


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return picture(0)


@pytest.fixture(scope="module")
def deblurrer(rgb: np.ndarray) -> Deblurrer:
    model = random_model()
    threshold = _mask_fraction_threshold(model, rgb, keep=0.3)
    return Deblurrer(model.reparameterize(), device="cpu", threshold=threshold)


def _check_outside_mask(result: Result, original: np.ndarray) -> None:
    """Outside the mask every channel is the input bit for bit; inside something changed."""
    mask = result.mask
    assert mask.dtype == np.bool_ and mask.shape == original.shape[:2]
    assert 0.0 < mask.mean() < 1.0, "the test needs a partial mask"
    output = np.asarray(result.image)
    expected = original.astype(output.dtype)
    assert np.array_equal(output[~mask], expected[~mask])
    assert not np.array_equal(output[mask], expected[mask])


def test_uint8_rgb_keeps_dtype_and_is_exact_outside_the_mask(
    deblurrer: Deblurrer, rgb: np.ndarray
) -> None:
    image = np.round(rgb * 255).astype(np.uint8)
    result = deblurrer(image)
    assert result.image.dtype == np.uint8 and result.image.shape == image.shape
    _check_outside_mask(result, image)
    stats = result.stats
    assert (stats["height"], stats["width"], stats["tiles"]) == (HEIGHT, WIDTH, 1)
    assert stats["fraction"] == pytest.approx(result.mask.mean())
    assert stats["ms"] > 0
    assert stats["dense_gflops"] > stats["pruned_gflops"] > 0


def test_uint16_rgb_keeps_16_bits(deblurrer: Deblurrer, rgb: np.ndarray) -> None:
    image = np.round(rgb * 65535).astype(np.uint16)
    image[0, 0] = [1, 65534, 12345]  # values 8-bit could not hold
    result = deblurrer(image)
    assert result.image.dtype == np.uint16
    _check_outside_mask(result, image)
    # The restored pixels use 16-bit precision too, not 8-bit steps of 257.
    assert np.any(result.image[result.mask] % 257 != 0)


def test_float_input_gives_float32(deblurrer: Deblurrer, rgb: np.ndarray) -> None:
    result = deblurrer(rgb.astype(np.float64))
    assert result.image.dtype == np.float32
    _check_outside_mask(result, rgb)
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0


def test_gray_is_restored_as_rgb_and_returned_as_luma(
    deblurrer: Deblurrer, rgb: np.ndarray
) -> None:
    gray = np.round(rgb @ LUMA_WEIGHTS * 255).astype(np.uint8)
    result = deblurrer(gray)
    assert result.image.shape == gray.shape and result.image.dtype == np.uint8
    _check_outside_mask(result, gray)
    # Inside the mask the value is the luma of restoring the gray picture as RGB.
    restored, mask, _ = deblurrer.restore(np.repeat(gray[..., None] / 255.0, 3, axis=2))
    expected = np.round(np.clip(restored, 0, 1) @ LUMA_WEIGHTS * 255)
    assert np.array_equal(result.image[mask], expected[mask].astype(np.uint8))


def test_rgba_alpha_is_untouched(deblurrer: Deblurrer, rgb: np.ndarray) -> None:
    alpha = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 1), dtype=np.uint8)
    image = np.concatenate([np.round(rgb * 255).astype(np.uint8), alpha], axis=2)
    result = deblurrer(image)
    assert result.image.shape == (HEIGHT, WIDTH, 4)
    assert np.array_equal(result.image[..., 3], image[..., 3])
    _check_outside_mask(result, image)
    # Alpha does not steer the restoration: RGB alone gives the same colours.
    assert np.array_equal(result.image[..., :3], deblurrer(image[..., :3]).image)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "I;16", "F"])
def test_pil_images_come_back_in_their_mode(
    deblurrer: Deblurrer, rgb: np.ndarray, mode: str
) -> None:
    rgba = np.concatenate([rgb, np.linspace(0, 1, WIDTH)[None, :, None].repeat(HEIGHT, 0)], 2)
    u8 = np.round(rgba * 255).astype(np.uint8)
    if mode == "I;16":
        image = Image.fromarray(np.round(rgb @ LUMA_WEIGHTS * 65535).astype(np.uint16))
    elif mode == "F":
        image = Image.fromarray((rgb @ LUMA_WEIGHTS).astype(np.float32))
    else:
        image = Image.fromarray(u8).convert(mode)
    assert image.mode == mode
    result = deblurrer(image)
    assert isinstance(result.image, Image.Image)
    assert result.image.mode == mode and result.image.size == image.size
    _check_outside_mask(Result(np.asarray(result.image), result.mask), np.asarray(image))
    if "A" in mode:
        assert result.image.getchannel("A").tobytes() == image.getchannel("A").tobytes()


def test_palette_image_comes_back_as_rgb(deblurrer: Deblurrer, rgb: np.ndarray) -> None:
    image = Image.fromarray(np.round(rgb * 255).astype(np.uint8)).convert("P")
    result = deblurrer(image)
    assert result.image.mode == "RGB"
    _check_outside_mask(
        Result(np.asarray(result.image), result.mask), np.asarray(image.convert("RGB"))
    )


def test_a_path_gives_a_pil_image(deblurrer: Deblurrer, rgb: np.ndarray, tmp_path: Path) -> None:
    u8 = np.round(rgb * 255).astype(np.uint8)
    Image.fromarray(u8).save(tmp_path / "photo.png")
    result = deblurrer(tmp_path / "photo.png")
    assert isinstance(result.image, Image.Image) and result.image.mode == "RGB"
    assert np.array_equal(np.asarray(result.image), deblurrer(u8).image)
    assert np.array_equal(
        np.asarray(deblurrer(str(tmp_path / "photo.png")).image), np.asarray(result.image)
    )


def test_unsupported_inputs_are_refused_clearly(deblurrer: Deblurrer, tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="a torch tensor or a path, not list"):
        deblurrer([[0, 1]])
    with pytest.raises(InputError, match="unsupported pixel dtype int64"):
        deblurrer(np.zeros((8, 8, 3), dtype=np.int64))
    with pytest.raises(InputError, match=r"unsupported image array shape \(8, 8, 5\)"):
        deblurrer(np.zeros((8, 8, 5), dtype=np.uint8))
    with pytest.raises(InputError, match="missing.png"):
        deblurrer(tmp_path / "missing.png")


def test_dense_processes_every_pixel(rgb: np.ndarray) -> None:
    dense = Deblurrer(random_model(), device="cpu", dense=True)
    result = dense(rgb)
    assert result.mask.all() and result.stats["fraction"] == 1.0
    assert result.stats["pruned_gflops"] == pytest.approx(result.stats["dense_gflops"])


def test_threshold_sets_the_model_knob() -> None:
    assert Deblurrer(random_model(), device="cpu", threshold=0.83).model.mask_threshold == 0.83


def test_compose_copies_original_values_exactly() -> None:
    original = np.array([[[0, 65535, 7]], [[1, 2, 3]]], dtype=np.uint16)  # (2, 1, 3)
    restored = np.full((2, 1, 3), 0.5, dtype=np.float32)
    mask = np.array([[True], [False]])
    out = compose(original, restored, mask)
    assert out.dtype == np.uint16
    assert out[0, 0].tolist() == [32768, 32768, 32768] and out[1, 0].tolist() == [1, 2, 3]


# Tiled vs untiled, measured with the full m2aenet-s architecture (random weights, std 0.1,
# dense): max |difference| 0.0006 on 48 x 128 (tiles 64, overlap 16) and 0.0013 on 256 x 256
# (tiles 128, overlap 32), against restorations that change pixels by 0.12 on average. Tiles
# differ only because the 1/4-resolution analyzer sees less context; a blending error (a seam)
# would show at the scale of the restoration itself. 0.01 is 2.5 levels of 8 bits.
TILE_TOLERANCE = 0.01


def _full_size_random_model() -> torch.nn.Module:
    defaults = {key: getattr(create_model(MODEL).config, key) for key in SMALL}
    return random_model(**defaults)


def test_tiled_matches_untiled_within_tolerance() -> None:
    model = _full_size_random_model().reparameterize()
    image = np.concatenate([picture(0), picture(1)[:, ::-1]], axis=1)  # 48 x 128
    untiled = Deblurrer(model, device="cpu", dense=True, tile=0, count_flops=False)(image)
    tiled = Deblurrer(model, device="cpu", dense=True, tile=64, tile_overlap=16, count_flops=False)(
        image
    )
    assert tiled.stats["tiles"] == 3 and untiled.stats["tiles"] == 1
    # the model really changes the image (mean change ~0.09), far beyond the tolerance
    assert np.abs(untiled.image - image).mean() > 5 * TILE_TOLERANCE
    assert np.abs(tiled.image - untiled.image).max() < TILE_TOLERANCE


def test_tiled_with_predicted_masks_keeps_unmasked_pixels_exact() -> None:
    model = _full_size_random_model()
    image = np.concatenate([picture(0), picture(1)[:, ::-1]], axis=1)
    threshold = _mask_fraction_threshold(model, image, keep=0.3)
    model.reparameterize()
    u8 = np.round(image * 255).astype(np.uint8)
    options = {"device": "cpu", "threshold": threshold, "count_flops": False}
    untiled = Deblurrer(model, tile=0, **options)(u8)
    tiled = Deblurrer(model, tile=64, tile_overlap=16, **options)(u8)
    _check_outside_mask(tiled, u8)
    # Random weights give an almost flat blur probability, so near the threshold the masks of
    # tiles and whole image disagree on some pixels; where both restore, the values agree.
    both = tiled.mask & untiled.mask
    assert both.mean() > 0.2
    difference = np.abs(tiled.image.astype(int) - untiled.image.astype(int))[both]
    assert difference.max() <= round(TILE_TOLERANCE * 255)


def test_from_pretrained_loads_safetensors_in_deploy_mode(rgb: np.ndarray, tmp_path: Path) -> None:
    model = random_model()
    weights = save_model(tmp_path / "w.safetensors", model)
    deployed = Deblurrer.from_pretrained(weights, device="cpu", dense=True)
    reference = Deblurrer(model, device="cpu", dense=True)
    np.testing.assert_allclose(deployed(rgb).image, reference(rgb).image, atol=1e-4)


def test_missing_and_unsafe_weights_are_refused(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no shipped weights named 'no-such-weights'"):
        Deblurrer.from_pretrained("no-such-weights", device="cpu")
    pickle = tmp_path / "w.pt"
    torch.save({"x": torch.zeros(1)}, pickle)
    with pytest.raises(CheckpointError, match="w.pt: only .safetensors weights are loaded"):
        Deblurrer.from_pretrained(pickle, device="cpu")
    disguised = tmp_path / "d.safetensors"
    disguised.write_bytes(pickle.read_bytes())
    (tmp_path / "d.json").write_text(json.dumps({"model": MODEL, "model_config": SMALL}))
    with pytest.raises(CheckpointError, match="d.safetensors: not a readable safetensors file"):
        Deblurrer.from_pretrained(disguised, device="cpu")


def test_weights_of_the_wrong_shape_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    model = random_model()
    weights = save_model(tmp_path / "w.safetensors", model)
    state = {key: value.contiguous() for key, value in model.state_dict().items()}
    first = next(key for key, value in state.items() if value.is_floating_point() and value.ndim)
    state[first] = torch.zeros(*state[first].shape[:-1], state[first].shape[-1] + 1)
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="w.safetensors: weights do not fit"):
        Deblurrer.from_pretrained(weights, device="cpu")


def test_non_finite_float_values_are_refused_with_their_count(
    deblurrer: Deblurrer, rgb: np.ndarray
) -> None:
    image = rgb.copy()
    image[5:15, 5:15] = np.nan  # 10x10 pixels x 3 channels
    image[0, 0, 0] = np.inf
    with pytest.raises(InputError, match=r"float image has 301 non-finite values"):
        deblurrer(image)


def test_empty_arrays_are_refused(deblurrer: Deblurrer) -> None:
    for shape in [(0, 64, 3), (48, 0), (0, 0, 4)]:
        with pytest.raises(InputError, match="empty image array"):
            deblurrer(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize("value", [0.0, 1.0, -0.1, 1.5, float("nan"), float("inf"), "0.5", True])
def test_thresholds_outside_the_open_unit_interval_are_refused(value: object) -> None:
    with pytest.raises(ConfigError, match=r"threshold .*must be"):
        Deblurrer(random_model(), device="cpu", threshold=value)
    with pytest.raises(ConfigError, match=r"threshold .*must be"):
        Deblurrer.from_pretrained("no-such-weights", threshold=value)  # before loading


def test_deblur_file_refuses_to_write_over_its_source(
    deblurrer: Deblurrer, rgb: np.ndarray, tmp_path: Path
) -> None:
    source = tmp_path / "a.png"
    Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(source)
    before = source.read_bytes()
    with pytest.raises(InputError, match="would overwrite the input"):
        deblurrer.deblur_file(source, source)
    with pytest.raises(InputError, match="would overwrite the input"):
        deblurrer.deblur_file(source, tmp_path / "b.png", mask_path=tmp_path / "." / "a.png")
    assert source.read_bytes() == before


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.uint8])
def test_a_tensor_batch_comes_back_as_a_tensor(
    deblurrer: Deblurrer, rgb: np.ndarray, dtype: torch.dtype
) -> None:
    pictures = np.stack([rgb, picture(5)])  # (2, H, W, 3)
    batch = torch.from_numpy(pictures).permute(0, 3, 1, 2)
    batch = (batch * 255).round().to(dtype) if dtype == torch.uint8 else batch.to(dtype)
    result = deblurrer(batch)
    assert isinstance(result.image, torch.Tensor)
    assert result.image.shape == batch.shape and result.image.dtype == dtype
    assert result.mask.shape == (2, HEIGHT, WIDTH) and result.mask.dtype == torch.bool
    assert result.stats["batch"] == 2 and 0.0 < result.stats["fraction"] < 1.0
    outside = ~result.mask[:, None].expand_as(batch)
    assert torch.equal(result.image[outside], batch[outside])
    assert not torch.equal(result.image, batch)
    # Each image of the batch gets what the array API gives it.
    first = deblurrer(batch[0].permute(1, 2, 0).numpy())
    assert np.array_equal(result.mask[0].numpy(), first.mask)
    single = deblurrer(batch[1])
    assert single.image.shape == batch[1].shape and single.mask.shape == (HEIGHT, WIDTH)
    with pytest.raises(InputError, match="empty tensor batch"):
        deblurrer(batch[:0])
    with pytest.raises(InputError, match=r"unsupported tensor shape \(2, 5, 48, 64\)"):
        deblurrer(torch.zeros(2, 5, HEIGHT, WIDTH))


def test_threads_apply_to_the_network_and_are_restored(rgb: np.ndarray) -> None:
    """`threads=1` runs the network on one CPU thread and leaves torch's setting as it was."""
    seen: list[int] = []
    model = random_model()
    model.register_forward_pre_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        Deblurrer(model, device="cpu", threads=1, count_flops=False)(rgb)
        assert seen == [1]
        assert torch.get_num_threads() == 2
        Deblurrer(model, device="cpu", count_flops=False)(rgb)  # None: torch's own setting
        assert seen == [1, 2]
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(threads: object) -> None:
    with pytest.raises(ConfigError, match="threads must be an integer >= 1"):
        Deblurrer(random_model(), device="cpu", threads=threads)


def test_two_threads_making_the_first_calls_measure_flops_once_and_keep_the_executor(
    rgb: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    from m2aenet import flops

    model = random_model().reparameterize()
    reference = Deblurrer(model, device="cpu").flops_estimate(HEIGHT, WIDTH, 100)
    real_count = flops.count_flops
    measured_with = []

    def slow_count(model: torch.nn.Module, *args: object, **kwargs: object) -> object:
        measured_with.append(model.executor)
        time.sleep(0.1)  # widens the window in which a second thread also starts measuring
        return real_count(model, *args, **kwargs)

    monkeypatch.setattr(flops, "count_flops", slow_count)
    deblurrer = Deblurrer(model, device="cpu")
    start = threading.Barrier(2)
    estimates = []

    def first_call() -> None:
        start.wait()
        estimates.append(deblurrer.flops_estimate(HEIGHT, WIDTH, 100))

    threads = [threading.Thread(target=first_call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert model.executor == "auto"
    assert len(measured_with) == 3 and set(measured_with) == {"pixel"}  # one measurement
    assert estimates == [reference, reference]


def test_tiled_images_hold_no_image_sized_float_copy(deblurrer: Deblurrer) -> None:
    """Numpy memory of a tiled run is the output and the mask plus one band of tile rows.

    The whole-image float pipeline peaked at more than 36 bytes a pixel of numpy arrays
    (float input, compose temporaries) on top of the network; a 16384 x 16384 PNG needed
    more than 12 GB. tracemalloc sees numpy's allocations (not torch's).
    """
    import tracemalloc

    tall = np.tile(np.round(picture(3) * 255).astype(np.uint8), (64, 1, 1))  # 3072 x 64
    tiled = Deblurrer(deblurrer.model, device="cpu", tile=64, tile_overlap=8, count_flops=False)
    whole = tiled.restore(tall.astype(np.float32) / 255)  # the full-image path, for reference
    tracemalloc.start()
    try:
        result = tiled.deblur_array(tall)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.stats["tiles"] == 55 and result.image.dtype == np.uint8
    assert peak < 8 * tall.shape[0] * tall.shape[1], peak  # output 3 + mask 1 + bands
    # Streaming the bands changes nothing: the same pixels as blending the whole image.
    assert np.array_equal(result.mask, whole[1])
    assert np.array_equal(result.image, compose(tall, whole[0], whole[1]))
    _check_outside_mask(result, tall)


def test_an_image_that_cannot_fit_in_memory_is_refused_before_decoding(
    deblurrer: Deblurrer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from m2aenet import imageio, memory

    source = tmp_path / "big.png"
    Image.fromarray(np.zeros((256, 256, 3), np.uint8)).save(source)
    monkeypatch.setattr(memory, "available_memory", lambda: 20 * 1000**2)
    decoded = []
    monkeypatch.setattr(imageio, "load_image", lambda *a, **k: decoded.append(a))
    untiled = Deblurrer(deblurrer.model, device="cpu", tile=0, count_flops=False)
    with pytest.raises(
        InputError, match=r"big.png: a 256 x 256 image needs up to [\d.]+ MB .* use tiling"
    ):
        untiled.deblur_file(source, tmp_path / "out.png")
    with pytest.raises(InputError, match=r"array: a 256 x 256 image needs up to"):
        untiled.deblur_array(np.zeros((256, 256, 3), np.uint8))
    assert not decoded and not (tmp_path / "out.png").exists()
    # Tiles bound the network's share: the same image in 64-pixel tiles fits in 20 MB.
    tiled = Deblurrer(deblurrer.model, device="cpu", tile=64, count_flops=False)
    assert tiled.memory_estimate(256, 256, 31) < 20 * 1000**2
    tiled.deblur_array(np.zeros((256, 256, 3), np.uint8))
