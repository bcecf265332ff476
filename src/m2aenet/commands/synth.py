"""`m2aenet synth`: generate synthetic motion-blur pairs (and/or preview a generated set)."""

from __future__ import annotations

import argparse
from pathlib import Path

from m2aenet.commands.arguments import positive_int, unit_fraction

# Kept literal (not imported) so `m2aenet --help` does not import torch.
_SPLITS = ("train", "val", "test")
_MODES = ("local", "global", "mixed")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate synthetic local/global motion-blur training pairs",
        description=(
            "Blur moving objects (local) or the whole frame (camera shake, global) over sharp "
            "photos, averaging sub-frames in linear light. Writes DIR/{blur,sharp,mask}/NAME.png, "
            "DIR/motion/NAME.npy and DIR/meta.json. With --preview alone, draws a contact sheet "
            "of an existing set."
        ),
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--count", type=int, metavar="N", help="number of images to generate")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--size", default="512x512", metavar="WxH", help="default 512x512")
    parser.add_argument("--mode", choices=_MODES, default="local", help="default local")
    parser.add_argument(
        "--global-fraction",
        type=unit_fraction,
        default=0.2,
        metavar="P",
        help="share of camera-shake images in --mode mixed (default 0.2)",
    )
    parser.add_argument(
        "--split",
        choices=_SPLITS,
        default="train",
        help="photo pool and random stream: train (mate-backgrounds + scikit-image), val "
        "(lomiri-wallpapers-20.04 + ukui-wallpapers), test (lomiri-wallpapers-16.04); "
        "default train",
    )
    parser.add_argument(
        "--sources",
        nargs="+",
        metavar="PATH",
        help="photo files or folders (searched recursively) replacing the split's photos",
    )
    parser.add_argument(
        "--blur-length",
        metavar="LOW-HIGH",
        help="blur path length in px of the output images, log-uniform in LOW-HIGH (e.g. 3-15; "
        "default 4-60 px at 512 px, scaled with the image's short side)",
    )
    parser.add_argument("--noise", action="store_true", help="add Poisson-Gaussian noise to blur")
    parser.add_argument("--jpeg", type=int, metavar="Q", help="JPEG-compress blur at quality Q")
    parser.add_argument(
        "--realism",
        action="store_true",
        help="realistic scenes: 1-4 objects shaped from photo segments, polygons and limbs (up "
        "to 40%% of the frame, some cut from the background photo itself), limbs swinging on "
        "joints, approach/recede, and a random camera after the blur (highlights that streak, "
        "exposure, tone curve, defocus, slight shake, noise, JPEG, gray) applied to blur and "
        "sharp alike (docs/data.md)",
    )
    parser.add_argument(
        "--realism-set",
        nargs="+",
        action="extend",  # repeating the flag adds to the list (it used to keep the last only)
        metavar="KEY=VALUE",
        help="change --realism settings, e.g. max_area=0.3 camera.jpeg=0.8 (keys in docs/data.md)",
    )
    parser.add_argument(
        "--preview", type=Path, metavar="FILE", help="write a PNG contact sheet of the set"
    )
    parser.add_argument(
        "--preview-rows",
        type=positive_int,
        default=6,
        metavar="N",
        help="images in the preview (6)",
    )
    parser.add_argument(
        "--no-motion", action="store_true", help="skip DIR/motion (8 MB per 512x512 image)"
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="generate in N processes (same files as one; default 1)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from m2aenet.atomic import check_output_file, check_output_folder
    from m2aenet.errors import InputError

    if args.count is None and args.preview is None:
        raise InputError("nothing to do: give --count N to generate, or --preview FILE")
    if args.count is not None:
        check_output_folder(args.out, "--out")
    if args.preview is not None:
        check_output_file(args.preview, "--preview")
    if args.count is not None:
        from m2aenet.data.realism import realism_from_overrides
        from m2aenet.data.synth_writer import generate_dataset, parse_blur_length, parse_size

        size = parse_size(args.size)
        if args.realism_set and not args.realism:
            raise InputError("--realism-set needs --realism")
        realism = realism_from_overrides(args.realism_set or ()) if args.realism else None
        if args.count < 1:
            raise InputError(f"--count must be >= 1, got {args.count}")
        if args.seed < 0:
            raise InputError(f"--seed must be >= 0, got {args.seed}")
        meta = generate_dataset(
            args.out,
            args.count,
            seed=args.seed,
            size=size,
            mode=args.mode,
            split=args.split,
            sources=args.sources,
            noise=args.noise,
            jpeg=args.jpeg,
            global_fraction=args.global_fraction,
            overwrite=args.overwrite,
            write_motion=not args.no_motion,
            progress=not args.no_progress,
            blur_length=parse_blur_length(args.blur_length) if args.blur_length else None,
            realism=realism,
            workers=args.workers,
        )
        print(f"wrote {meta['count']} {args.mode} pairs to {args.out}")
    if args.preview is not None:
        from m2aenet.data.preview import write_preview

        write_preview(args.preview, args.out, rows_per_set=args.preview_rows)
        print(f"wrote preview {args.preview}")
    return 0
