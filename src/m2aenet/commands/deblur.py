"""`m2aenet deblur INPUT... -o OUTDIR`: restore a batch of images with a trained model.

Under `torchrun --nproc_per_node N -m m2aenet deblur ...` every process reads RANK and
WORLD_SIZE and takes its own round-robin share of the sorted inputs. Each process prints the
summary of its share; at the end the processes join a gloo group (torchrun's MASTER_ADDR)
only to hand their records to process 0, which prints the summary of the whole run and
writes the one `--json FILE`. Started with RANK and WORLD_SIZE but no MASTER_ADDR, process R
writes `FILE` with `.rankR` before the suffix (`summary.rank0.json`) instead.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from m2aenet.atomic import STDOUT
from m2aenet.commands.arguments import (
    add_device_option,
    add_threads_option,
    add_threshold_option,
    add_weights_option,
    defocus_veto,
    whole_frame_extent,
)

PROG = "m2aenet deblur"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `deblur` sub-command."""
    parser = subparsers.add_parser(
        "deblur",
        help="restore local motion blur in image files",
        description=(
            "Deblur image files (PNG, JPEG, TIFF, WebP; 8/16-bit, gray, RGBA) into OUTDIR, "
            "keeping each file's name, format and bit depth. Inputs are never overwritten."
        ),
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    parser.add_argument(
        "--recursive", action="store_true", help="also take images in sub-folders of folders"
    )
    add_weights_option(parser)
    add_threshold_option(parser, "blur-mask threshold")
    parser.add_argument(
        "--defocus-veto",
        type=defocus_veto,
        default=None,
        metavar="PX",
        help=(
            "leave unmarked what is out of focus: where even the narrowest edge orientation is "
            "wider than PX px (1.5 cut bokeh marks by 15-30 points; long smears of fine texture "
            "can look alike; docs/usage.md); 0: off (default: the weights' own, off)"
        ),
    )
    parser.add_argument(
        "--whole-frame-extent",
        type=whole_frame_extent,
        default=None,
        metavar="PX",
        help=(
            "restore an image whole when its frame blur extent reaches PX: camera shake, which "
            "blurs even its sharpest parts; 0: off (default: the weights' own, 3.5 for the "
            "shipped 'default', which flagged 2 of 69 sharp photos; docs/usage.md)"
        ),
    )
    parser.add_argument(
        "--dense", action="store_true", help="process every pixel (no pruning), for comparison"
    )
    parser.add_argument(
        "--tile",
        type=int,
        default=None,
        metavar="N",
        help="process in N x N tiles (default: automatic for very large images; 0: never)",
    )
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=32,
        metavar="N",
        help="pixels shared by neighbouring tiles (default: %(default)s)",
    )
    parser.add_argument(
        "--executor",
        choices=("auto", "pixel", "tile"),
        default="auto",
        help="how pruned pixels are computed (default: %(default)s)",
    )
    parser.add_argument(
        "--save-mask",
        action="store_true",
        help="also write NAME_mask.png and NAME_overlay.png (the detected blur)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also write NAME_compare.png: input | restored | mask, and both zoomed on the "
        "region the restoration changed most",
    )
    add_device_option(parser)
    add_threads_option(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (never inputs)"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="write a per-image JSON summary (-: to standard output)",
    )
    parser.add_argument(
        "--jpeg-quality",
        type=int,
        default=95,
        metavar="Q",
        help="quality of JPEG outputs, 1-100 (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _rank_json_path(path: Path, rank: int, world_size: int) -> Path:
    if world_size == 1 or str(path) == STDOUT:
        return path
    return path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def _process_device(device: str, world_size: int) -> str:
    """Under torchrun, `auto`/`cuda` means this process's own GPU: cuda:LOCAL_RANK."""
    import torch

    if world_size == 1 or device not in ("auto", "cuda") or not torch.cuda.is_available():
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return f"cuda:{local_rank % torch.cuda.device_count()}"


def run(args: argparse.Namespace) -> int:
    """Deblur every input; return 0, or 1 when any image failed."""
    from tqdm import tqdm

    from m2aenet.api import Deblurrer, check_tiling
    from m2aenet.atomic import check_output_file, write_text_or_stdout
    from m2aenet.errors import ConfigError
    from m2aenet.inputs import (
        check_plan,
        collect_inputs,
        plan_outputs,
        rank_from_environment,
        shard,
    )

    if not 1 <= args.jpeg_quality <= 100:
        raise ConfigError(f"--jpeg-quality {args.jpeg_quality}: must be in 1..100")
    check_tiling(args.tile, args.tile_overlap, ("--tile", "--tile-overlap"))
    rank, world_size = rank_from_environment()
    merge = world_size > 1 and _process_group_available()
    json_path = args.json
    if json_path is not None and world_size > 1 and not merge:
        json_path = _rank_json_path(json_path, rank, world_size)
    to_stdout = json_path is not None and str(json_path) == STDOUT
    if json_path is not None:
        check_output_file(json_path, "--json")

    # Everything that could harm an input is checked on the whole batch, by every process,
    # before the model is even loaded.
    inputs = collect_inputs(args.inputs, recursive=args.recursive)
    jobs = plan_outputs(inputs, args.output, save_mask=args.save_mask, compare=args.compare)
    input_folders = [spec for spec in args.inputs if Path(spec).is_dir()]
    json_files = [json_path] if json_path is not None and not to_stdout else []
    check_plan(jobs, args.output, json_files, input_folders)
    mine = shard(jobs, rank, world_size)

    deblurrer = Deblurrer.from_pretrained(
        args.weights,
        device=_process_device(args.device, world_size),
        threshold=args.threshold,
        whole_frame_extent=args.whole_frame_extent,
        defocus_veto=args.defocus_veto,
        dense=args.dense,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        executor=args.executor,
        threads=args.threads,
    )

    records: list[dict[str, Any]] = []
    start = time.perf_counter()
    progress = tqdm(mine, unit="img", disable=args.no_progress or None, file=sys.stderr)
    for job in progress:
        record = _deblur_one(deblurrer, job, args)
        if record["status"] == "skipped":
            message = f"{PROG}: {record['existing']} exists, skipped (use --overwrite to replace)"
            progress.write(message, file=sys.stderr)
        elif "kept" in record:
            written = ", ".join(Path(path).name for path in record["extras_written"])
            message = f"{PROG}: {record['kept']} exists, kept; wrote the missing {written}"
            progress.write(message, file=sys.stderr)
        elif record["status"] == "failed":
            progress.write(f"{PROG}: error: {record['error']}", file=sys.stderr)
        for note in record.get("warnings", []):
            progress.write(f"{PROG}: warning: {note}", file=sys.stderr)
        records.append(record)
    progress.close()

    total_s = time.perf_counter() - start
    summary = _summary(records, total_s)
    prefix = f"[rank {rank}/{world_size}] " if world_size > 1 else ""
    # With `--json -` standard output carries the JSON document only.
    print(prefix + _summary_line(summary), file=sys.stderr if to_stdout else sys.stdout)
    document = {
        "weights": str(args.weights),
        "device": str(deblurrer.device),
        "dense": args.dense,
        "threshold": getattr(deblurrer.model, "mask_threshold", None),
        "whole_frame_extent": getattr(deblurrer.model, "whole_frame_extent", None),
        "defocus_veto": getattr(deblurrer.model, "defocus_veto", None),
        "rank": rank,
        "world_size": world_size,
        "summary": summary,
        "images": records,
    }
    if merge:
        documents = _gather_on_rank_0(document, world_size)
        if documents is None:
            return 1 if summary["failed"] else 0
        document = _merged_document(documents)
        line = f"[all {world_size} processes] " + _summary_line(document["summary"])
        print(line, file=sys.stderr if to_stdout else sys.stdout)
    if json_path is not None:
        write_text_or_stdout(json_path, json.dumps(document, indent=2) + "\n")
    return 1 if summary["failed"] else 0


def _process_group_available() -> bool:
    """True under torchrun, which sets where process 0 listens for the others."""
    return bool(os.environ.get("MASTER_ADDR")) and bool(os.environ.get("MASTER_PORT"))


def _gather_on_rank_0(document: dict[str, Any], world_size: int) -> list[dict] | None:
    """Every process's JSON document, in rank order, on process 0 (None on the others).

    A gloo group on the CPU is joined only for this, after the work: processes that finish
    early wait for the others (up to a day, not torch's default 30 minutes).
    """
    from datetime import timedelta

    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=timedelta(days=1))
    try:
        gathered: list[Any] | None = [None] * world_size if dist.get_rank() == 0 else None
        dist.gather_object(document, gathered, dst=0)
    finally:
        dist.destroy_process_group()
    return gathered


def _merged_document(documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One run's JSON from the processes' documents: every image record, sorted by name, the
    summary of them all (wall time: the slowest process) and each process's own summary."""
    records = sorted(
        (record for document in documents for record in document["images"]),
        key=lambda record: record["name"],
    )
    first = documents[0]
    return {
        "weights": first["weights"],
        "devices": [document["device"] for document in documents],
        "dense": first["dense"],
        "threshold": first["threshold"],
        "world_size": len(documents),
        "summary": _summary(records, max(d["summary"]["total_s"] for d in documents)),
        "ranks": [{"rank": d["rank"], "summary": d["summary"]} for d in documents],
        "images": records,
    }


def _deblur_one(deblurrer: Any, job: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Process one OutputJob; returns its JSON record (status ok, skipped or failed)."""
    from m2aenet.errors import InputWarning, M2AENetError

    record: dict[str, Any] = {
        "name": str(job.source.relative),
        "input": str(job.source.path),
        "output": str(job.image),
    }
    extras = (job.mask, job.overlay, job.compare)
    if job.done and not args.overwrite:
        # The restored image exists and stays; extras this run newly asks for (--save-mask,
        # --compare) are still written, from a fresh pass of the same network.
        extras = tuple(path if path is not None and not path.exists() else None for path in extras)
        if not any(extras):
            return {**record, "status": "skipped", "existing": str(job.image)}
        record.update(kept=str(job.image), extras_written=[str(p) for p in extras if p])
    mask_path, overlay_path, compare_path = extras
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", InputWarning)
            result = deblurrer.deblur_file(
                job.source.path,
                job.image,
                mask_path,
                overlay_path,
                args.jpeg_quality,
                compare_path=compare_path,
                write_image="kept" not in record,
            )
        notes = [str(item.message) for item in caught if issubclass(item.category, InputWarning)]
        if notes:
            record["warnings"] = notes
    except M2AENetError as error:  # messages name the file already
        return {**record, "status": "failed", "error": str(error)}
    except Exception as error:  # noqa: BLE001 - one broken file must not stop the batch
        error_text = f"{job.source.path}: {type(error).__name__}: {error}"
        return {**record, "status": "failed", "error": error_text}
    stats = result.stats
    record.update(
        status="ok",
        size=[stats["width"], stats["height"]],
        fraction=stats["fraction"],
        ms=stats["ms"],
        dense_gflops=stats["dense_gflops"],
        pruned_gflops=stats["pruned_gflops"],
        tiles=stats["tiles"],
    )
    if job.mask is not None:
        record.update(mask=str(job.mask), overlay=str(job.overlay))
    if job.compare is not None:
        record["compare"] = str(job.compare)
    return record


def _summary(records: list[dict[str, Any]], total_s: float) -> dict[str, Any]:
    done = [record for record in records if record["status"] == "ok"]
    fractions = [record["fraction"] for record in done]
    dense = [record["dense_gflops"] for record in done if record["dense_gflops"] is not None]
    pruned = [record["pruned_gflops"] for record in done if record["pruned_gflops"] is not None]
    return {
        "done": len(done),
        "skipped": sum(record["status"] == "skipped" for record in records),
        "failed": sum(record["status"] == "failed" for record in records),
        "mean_fraction": sum(fractions) / len(fractions) if fractions else None,
        "dense_gflops": sum(dense) if dense else None,
        "pruned_gflops": sum(pruned) if pruned else None,
        "total_s": total_s,
    }


def _summary_line(summary: dict[str, Any]) -> str:
    fraction = summary["mean_fraction"]
    fraction_text = "n/a" if fraction is None else f"{100.0 * fraction:.1f}%"
    line = (
        f"{summary['done']} images done, {summary['skipped']} skipped, {summary['failed']} failed; "
        f"mean blurred fraction {fraction_text}; total {summary['total_s']:.1f} s"
    )
    if summary["dense_gflops"]:
        saved = 1.0 - summary["pruned_gflops"] / summary["dense_gflops"]
        line += f"; FLOPs saved {100.0 * saved:.0f}%"
    return line
