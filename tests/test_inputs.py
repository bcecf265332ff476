"""Input collection, output planning and the never-overwrite-inputs rules (inputs.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from m2aenet.errors import InputError, OutputError
from m2aenet.inputs import (
    InputFile,
    check_plan,
    collect_inputs,
    plan_outputs,
    rank_from_environment,
    shard,
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")  # contents do not matter here: nothing is decoded
    return path


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """photos/{a.png, b.JPG, notes.txt, .hidden.png, sub/c.tif, sub/deeper/d.webp}"""
    root = tmp_path / "photos"
    for name in ("a.png", "b.JPG", "notes.txt", ".hidden.png", "sub/c.tif", "sub/deeper/d.webp"):
        _touch(root / name)
    return root


def _relatives(inputs: list[InputFile]) -> list[str]:
    return [entry.relative.as_posix() for entry in inputs]


def test_a_folder_gives_its_images_only_and_not_subfolders(tree: Path) -> None:
    assert _relatives(collect_inputs([tree])) == ["a.png", "b.JPG"]


def test_recursive_keeps_the_path_below_the_folder(tree: Path) -> None:
    found = collect_inputs([tree], recursive=True)
    assert _relatives(found) == ["a.png", "b.JPG", "sub/c.tif", "sub/deeper/d.webp"]
    assert found[2].path == tree / "sub" / "c.tif"


def test_globs_are_expanded_here_so_quoted_patterns_work(tree: Path) -> None:
    assert _relatives(collect_inputs([str(tree / "*.png")])) == ["a.png"]
    assert _relatives(collect_inputs([str(tree / "*")])) == ["a.png", "b.JPG"]
    deep = collect_inputs([str(tree / "**" / "*.*")], recursive=True)
    assert _relatives(deep) == ["a.png", "b.JPG", "sub/c.tif", "sub/deeper/d.webp"]


def test_an_explicit_file_is_taken_even_without_an_image_extension(tree: Path) -> None:
    found = collect_inputs([tree / "notes.txt", tree / "a.png"])
    assert _relatives(found) == ["a.png", "notes.txt"]


def test_the_same_file_named_twice_is_processed_once(tree: Path) -> None:
    found = collect_inputs([tree / "a.png", tree, str(tree / "a.*")])
    assert _relatives(found) == ["a.png", "b.JPG"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("missing.png", "missing.png: no such file or folder"), ("*.nothing", "matches no image")],
)
def test_bad_arguments_name_themselves(tmp_path: Path, spec: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        collect_inputs([str(tmp_path / spec)])


def test_a_fifo_or_device_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match=r"pipe.png: not a regular file"):
        collect_inputs([str(fifo)])
    with pytest.raises(InputError, match=r"/dev/null: not a regular file"):
        collect_inputs(["/dev/null"])
    _touch(tmp_path / "a.png")  # in a folder, a FIFO with an image name is not an image
    assert _relatives(collect_inputs([str(tmp_path)])) == ["a.png"]


def test_a_folder_without_images_is_an_error(tmp_path: Path) -> None:
    _touch(tmp_path / "empty" / "readme.txt")
    with pytest.raises(InputError, match="no image files found in .*empty"):
        collect_inputs([tmp_path / "empty"])


def test_outputs_keep_the_relative_path_and_name(tree: Path, tmp_path: Path) -> None:
    jobs = plan_outputs(collect_inputs([tree], recursive=True), tmp_path / "out", save_mask=True)
    job = jobs[2]
    assert job.image == tmp_path / "out" / "sub" / "c.tif"
    assert job.mask == tmp_path / "out" / "sub" / "c_mask.png"
    assert job.overlay == tmp_path / "out" / "sub" / "c_overlay.png"
    assert job.outputs[-1] == job.image  # the image is written last
    assert plan_outputs(collect_inputs([tree]), tmp_path / "out")[0].mask is None


def test_output_folder_equal_to_the_input_folder_is_refused(tree: Path) -> None:
    jobs = plan_outputs(collect_inputs([tree]), tree)
    with pytest.raises(InputError, match="output folder holds input images"):
        check_plan(jobs, tree, input_folders=[tree])


def test_output_folder_holding_input_files_is_refused(tree: Path) -> None:
    jobs = plan_outputs(collect_inputs([tree / "a.png"]), tree)
    with pytest.raises(InputError, match="output folder holds input images"):
        check_plan(jobs, tree)


def test_an_output_landing_on_an_input_is_refused(tmp_path: Path) -> None:
    # A glob keeps the path below its fixed part: in/*/y.png -> deep/y.png, so -o in would
    # write in/deep/y.png over the input, although no input lies directly in `in`.
    source = _touch(tmp_path / "in" / "deep" / "y.png")
    jobs = plan_outputs(collect_inputs([str(tmp_path / "in" / "*" / "y.png")]), tmp_path / "in")
    with pytest.raises(InputError, match=r"y.png: output would overwrite the input .*y.png"):
        check_plan(jobs, tmp_path / "in")
    assert source.read_bytes() == b""


def test_the_json_summary_may_not_replace_an_input(tree: Path, tmp_path: Path) -> None:
    jobs = plan_outputs(collect_inputs([tree]), tmp_path / "out")
    with pytest.raises(InputError, match="a.png: output would overwrite the input"):
        check_plan(jobs, tmp_path / "out", extra_outputs=[tree / "a.png"])


def test_two_inputs_with_one_output_name_are_refused(tmp_path: Path) -> None:
    first = _touch(tmp_path / "x" / "same.png")
    second = _touch(tmp_path / "y" / "same.png")
    jobs = plan_outputs(collect_inputs([first, second]), tmp_path / "out")
    with pytest.raises(InputError, match="two outputs would be written to this file"):
        check_plan(jobs, tmp_path / "out")


def test_an_image_output_clashing_with_a_mask_output_is_refused(tmp_path: Path) -> None:
    inputs = collect_inputs(
        [_touch(tmp_path / "in" / "p.png"), _touch(tmp_path / "in" / "p_mask.png")]
    )
    jobs = plan_outputs(inputs, tmp_path / "out", save_mask=True)
    with pytest.raises(InputError, match="p_mask.png: two outputs"):
        check_plan(jobs, tmp_path / "out")


def test_output_path_that_is_a_file_is_refused(tree: Path) -> None:
    jobs = plan_outputs(collect_inputs([tree]), tree / "notes.txt")
    with pytest.raises(OutputError, match="is not a folder"):
        check_plan(jobs, tree / "notes.txt")
    with pytest.raises(OutputError, match="notes.txt is a file, not a folder"):
        check_plan(jobs, tree / "notes.txt" / "out")


def test_an_output_folder_named_like_an_image_is_refused(tree: Path, tmp_path: Path) -> None:
    jobs = plan_outputs(collect_inputs([tree / "a.png"]), tmp_path / "result.jpg")
    with pytest.raises(InputError, match="-o takes an output folder, not a file name"):
        check_plan(jobs, tmp_path / "result.jpg")
    (tmp_path / "result.jpg").mkdir()  # an existing folder of that name is a folder after all
    check_plan(jobs, tmp_path / "result.jpg")


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
def test_shards_are_disjoint_and_cover_everything(world_size: int) -> None:
    items = list(range(11))
    shares = [shard(items, rank, world_size) for rank in range(world_size)]
    assert sorted(item for share in shares for item in share) == items
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_rank_comes_from_torchrun_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert rank_from_environment() == (0, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert rank_from_environment() == (1, 2)
    with pytest.raises(InputError, match="RANK=2 / WORLD_SIZE=2"):
        shard([1, 2], 2, 2)


def test_relative_input_paths_work_from_the_current_folder(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    assert _relatives(collect_inputs(["*.png", "sub"])) == ["a.png", "c.tif"]
    jobs = plan_outputs(collect_inputs(["a.png"]), "out")
    check_plan(jobs, "out")
    with pytest.raises(InputError, match="output folder holds input images"):
        check_plan(plan_outputs(collect_inputs(["a.png"]), "."), ".")
    assert os.path.samefile(jobs[0].source.path, tree / "a.png")


def test_recursive_search_survives_symlink_loops_and_follows_each_real_folder_once(
    tree: Path, tmp_path: Path
) -> None:
    # Two loops (sub/up -> photos, sub/deeper/again -> sub) and one link to a real folder
    # outside the tree, whose image must be found exactly once.
    (tree / "sub" / "up").symlink_to(tree, target_is_directory=True)
    (tree / "sub" / "deeper" / "again").symlink_to(tree / "sub", target_is_directory=True)
    _touch(tmp_path / "elsewhere" / "e.png")
    (tree / "linked").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    expected = ["a.png", "b.JPG", "linked/e.png", "sub/c.tif", "sub/deeper/d.webp"]
    # In a child process: glob's own '**' never ends on such a tree, and a test must.
    code = (
        "import sys\n"
        "from m2aenet.inputs import collect_inputs\n"
        "for spec in sys.argv[1:]:\n"
        "    found = collect_inputs([spec], recursive=True)\n"
        "    print(' '.join(entry.relative.as_posix() for entry in found))\n"
    )
    specs = [str(tree), str(tree / "**" / "*.*")]
    result = subprocess.run(
        [sys.executable, "-c", code, *specs], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [" ".join(expected)] * 2


def test_a_recursive_glob_relative_to_the_working_folder(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tree)
    assert _relatives(collect_inputs(["**/*.tif"], recursive=True)) == ["sub/c.tif"]
    assert _relatives(collect_inputs(["**/*.png"], recursive=True)) == ["a.png"]
