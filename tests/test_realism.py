"""The realistic scene mix: settings, object sizes, joints, approach, and the generator/CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from synth_helpers import patchy_texture as _texture

from m2aenet import cli
from m2aenet.data.motion_paths import (
    JointMotion,
    ObjectMotion,
    path_length,
    point_positions,
    sample_object_motion,
)
from m2aenet.data.realism import Realism, realism_from_overrides, realistic_objects
from m2aenet.data.synth import SampleGenerator
from m2aenet.errors import InputError
from m2aenet.imageio import write_png


def _photos(folder: Path, count: int = 3) -> list[Path]:
    paths = [folder / f"photo{i}.png" for i in range(count)]
    for i, path in enumerate(paths):
        write_png(path, _texture(150, 200, i))
    return paths


def _picker(rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, dict]:
    return _texture(*size, int(rng.integers(1000))), {"source": "test"}


def test_objects_stay_within_the_requested_size_range() -> None:
    settings = Realism(min_area=0.02, max_area=0.3, thin_part=0.0)
    frame = 96 * 128
    areas = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        _, objects = realistic_objects(_texture(96, 128, 99), _picker, rng, settings, (3, 12))
        assert 1 <= len(objects) <= settings.max_objects
        for obj in objects:
            area = float((obj.alpha >= 0.5).sum()) / frame
            assert 0.0 < area <= settings.max_area
            areas.append(area)
    assert max(areas) > 0.1  # large objects do occur


def test_every_shape_kind_and_limbs_on_joints_occur() -> None:
    shapes, motions = set(), set()
    for seed in range(10):
        rng = np.random.default_rng(seed)
        background, objects = realistic_objects(
            _texture(96, 128, 7), _picker, rng, Realism(thin_part=0.6, same_photo=0.5), (3, 12)
        )
        assert background.shape == (96, 128, 3) and background.dtype == np.uint8
        shapes |= {o.described["shape"] for o in objects}
        shapes |= {"same_photo" for o in objects if o.described.get("same_photo")}
        motions |= {o.motion.kind for o in objects}
    assert {"segment", "polygon", "blob", "limb", "same_photo"} <= shapes
    assert "joint" in motions


def test_a_joint_stays_attached_to_the_moving_body() -> None:
    body = ObjectMotion("curved", (12.0, -4.0), (3.0, 2.0), rotation=0.3, log_scale=0.1)
    limb = JointMotion(body, joint=(10.0, -6.0), swing=0.8)
    times = np.linspace(-0.5, 0.5, 9)
    joint = np.array([[10.0, -6.0]])
    assert np.allclose(point_positions(limb, joint, times), point_positions(body, joint, times))
    tip = np.array([[30.0, -6.0]])  # 20 px from the joint: it swings, unlike the body's point
    assert not np.allclose(point_positions(limb, tip, times), point_positions(body, tip, times))
    matrix, offset = limb.transform(np.array([0.0]))
    assert np.allclose(matrix, np.eye(2)) and np.allclose(offset, 0)  # at rest at t = 0
    assert limb.to_dict()["kind"] == "joint"


def test_approach_changes_the_scale_over_the_exposure() -> None:
    motion = sample_object_motion(np.random.default_rng(0), 20.0, radius=40.0, kind="approach")
    assert abs(motion.log_scale) > 0.2
    rim = np.array([[40.0, 0.0], [0.0, 40.0], [-40.0, 0.0], [0.0, -40.0]])
    assert path_length(motion, rim) == pytest.approx(20.0, rel=0.35)


def test_settings_are_checked_and_overridable() -> None:
    settings = realism_from_overrides(["max_area=0.3", "camera.jpeg=1", "max_objects=2"])
    assert settings.max_area == 0.3 and settings.camera.jpeg == 1.0 and settings.max_objects == 2
    assert realism_from_overrides([]) == Realism()
    with pytest.raises(InputError, match="unknown --realism-set key 'colour'"):
        realism_from_overrides(["colour=1"])
    with pytest.raises(InputError, match="not a number"):
        realism_from_overrides(["joint=often"])
    with pytest.raises(InputError, match="joint"):
        realism_from_overrides(["joint=2"])
    with pytest.raises(InputError, match="depth_of_field"):
        realism_from_overrides(["depth_of_field=1.5"])
    with pytest.raises(InputError, match="min_view"):
        realism_from_overrides(["min_view=0"])


def test_the_realistic_generator_is_deterministic_and_its_mask_is_exact(tmp_path: Path) -> None:
    photos = _photos(tmp_path)

    def make() -> SampleGenerator:
        return SampleGenerator(
            photos, (64, 80), "mixed", seed=2, global_fraction=0.5, realism=Realism()
        )

    kinds = set()
    for index in range(6):
        a, b = make()(index), make()(index)
        assert np.array_equal(a.blur, b.blur) and np.array_equal(a.sharp, b.sharp)
        assert a.params == b.params and "camera" in a.params
        assert np.array_equal(a.blur[~a.mask], a.sharp[~a.mask])
        kinds.add(a.params["mode"])
    assert kinds == {"local", "global"}  # camera-shake frames go through the camera too
    assert not np.array_equal(make()(0).blur, make()(1).blur)


def _synth(out: Path, photos: Path, *extra: str) -> int:
    args = ["synth", "--out", str(out), "--sources", str(photos), "--size", "80x64"]
    return cli.main([*args, "--count", "3", "--no-progress", *extra])


def test_synth_realism_is_deterministic_from_the_seed(tmp_path: Path) -> None:
    _photos(tmp_path / "photos")
    runs = []
    for name in ("a", "b"):
        assert _synth(tmp_path / name, tmp_path / "photos", "--seed", "4", "--realism") == 0
        runs.append(
            {
                p.relative_to(tmp_path / name): p.read_bytes()
                for p in (tmp_path / name).rglob("*")
                if p.is_file()
            }
        )
    assert runs[0] == runs[1] and len(runs[0]) == 3 * 4 + 1
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["realism"]["max_objects"] == 4 and meta["realism"]["camera"]["jpeg"] == 0.5
    assert all("camera" in image for image in meta["images"])
    plain = tmp_path / "plain"
    assert _synth(plain, tmp_path / "photos", "--seed", "4") == 0
    assert "realism" not in json.loads((plain / "meta.json").read_text())
    assert (plain / "blur" / "000000.png").read_bytes() != runs[0][Path("blur/000000.png")]


def test_synth_realism_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _photos(tmp_path / "photos")
    assert _synth(tmp_path / "x", tmp_path / "photos", "--realism-set", "max_area=0.3") == 2
    assert "--realism-set needs --realism" in capsys.readouterr().err
    code = _synth(tmp_path / "y", tmp_path / "photos", "--realism", "--realism-set", "size=3")
    assert code == 2 and "unknown --realism-set key 'size'" in capsys.readouterr().err


def test_swinging_limbs_keep_to_the_requested_blur_lengths() -> None:
    settings = Realism(thin_part=1.0, joint=1.0, blob=0.0)
    limbs = 0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        _, objects = realistic_objects(_texture(96, 128, 5), _picker, rng, settings, (3, 10))
        for obj in objects:
            if isinstance(obj.motion, JointMotion):
                limbs += 1
                ys, xs = np.nonzero(obj.alpha > 0.05)
                centre = ((obj.alpha.shape[1] - 1) / 2, (obj.alpha.shape[0] - 1) / 2)
                tip = np.array([[xs.max(), ys.max()], [xs.min(), ys.min()]]) - centre
                assert path_length(obj.motion, tip) <= 10.0 + 1e-6
    assert limbs >= 3


def test_ghosting_caps_the_sub_frames_and_leaves_other_images_as_they_were(
    tmp_path: Path,
) -> None:
    make = _digest_generator(tmp_path)
    plain, ghosted = make(), make(ghosting=1.0)
    capped = 0
    for index in range(4):
        a, b = plain(index), ghosted(index)
        counts = [o["sub_frames"] for o in b.params["objects"]]
        assert all(3 <= c <= 8 for c in counts)
        assert np.array_equal(b.blur[~b.mask], b.sharp[~b.mask])  # the mask stays exact
        capped += sum(o["sub_frames"] for o in a.params["objects"]) > sum(counts)
    assert capped > 0  # some smooth smears became copies
    # Rate 0 draws nothing: the same images as before the option existed.
    assert _digest(make(ghosting=0.0)) == _DIGEST_BEFORE_OPTIONS


# Images 0-2 of `SampleGenerator(_photos(...), (64, 80), "local", seed=4, realism=Realism())`,
# computed with the code of commit 36851bf, before ghosting, depth of field and min_view.
_DIGEST_BEFORE_OPTIONS = "aefe9d8b0d34c95a026f6fa8e91df313af469eaf0604310d033e99c67cb23915"


def _digest_generator(folder: Path):
    """settings -> the generator `_DIGEST_BEFORE_OPTIONS` was computed with, given `Realism`."""
    photos = _photos(folder)
    return lambda **settings: SampleGenerator(
        photos, (64, 80), "local", seed=4, realism=Realism(**settings)
    )


def _digest(generator: SampleGenerator) -> str:
    import hashlib

    digest = hashlib.sha256()
    for index in range(3):
        sample = generator(index)
        digest.update(sample.blur.tobytes())
        digest.update(sample.mask.tobytes())
    return digest.hexdigest()


def test_depth_of_field_defocuses_backgrounds_only_and_leaves_other_images_as_they_were(
    tmp_path: Path,
) -> None:
    make = _digest_generator(tmp_path)
    assert _digest(make(depth_of_field=0.0, min_view=0.4)) == _DIGEST_BEFORE_OPTIONS
    focused = make(depth_of_field=1.0)
    for index in range(3):
        sample = focused(index)
        described = sample.params["background"]["depth_of_field"]
        assert 1.5 <= described["radius"] and 0.3 <= described["share"] <= 0.95
        # The defocus is the scene's: outside the motion the pair stays equal byte for byte.
        assert np.array_equal(sample.blur[~sample.mask], sample.sharp[~sample.mask])


def test_min_view_one_frames_the_whole_photo(tmp_path: Path) -> None:
    photos = _photos(tmp_path)  # 150 x 200: the short side is the height
    whole = SampleGenerator(photos, (64, 64), "local", seed=2, realism=Realism(min_view=1.0))
    default = SampleGenerator(photos, (64, 64), "local", seed=2, realism=Realism())
    heights = [default(i).params["background"]["box"][3] for i in range(4)]
    for index in range(4):
        assert whole(index).params["background"]["box"][3] == 150
    assert min(heights) < 150  # the default zooms in
