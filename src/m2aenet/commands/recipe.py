"""`m2aenet recipe RECIPE.yaml [--out DIR] [--minutes M] [--data-only | --plan]`."""

from __future__ import annotations

import argparse

from m2aenet.commands.arguments import positive_float, positive_int


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the `recipe` sub-command."""
    parser = subparsers.add_parser(
        "recipe",
        help="make the data, train every stage and ship the weights of a recipe (resumable)",
        description=(
            "Run a training recipe from a fresh checkout: make its missing data sets with "
            "`m2aenet synth`, train its stages in order (each resumes from its newest "
            "checkpoint; a finished one is skipped; a `kind: predictor` stage trains the "
            "previous stage's mask predictor apart and swaps it in), then calibrate the mask "
            "threshold on val and write OUT/ship/NAME.safetensors. Run the same command again "
            "to continue. "
            "The shipped weights' recipe: configs/recipe.yaml."
        ),
    )
    parser.add_argument("recipe", help="recipe YAML, e.g. configs/recipe.yaml")
    parser.add_argument("--out", help="stage and ship folders (default: the recipe's `out`)")
    parser.add_argument(
        "--minutes",
        type=positive_float,
        metavar="M",
        help="stop (resumably) after about M minutes of training",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--data-only", action="store_true", help="only make the missing data sets")
    what.add_argument(
        "--plan", action="store_true", help="print what is made and what is left; change nothing"
    )
    what.add_argument(
        "--bundle",
        metavar="DIR",
        help="write a self-contained folder (photos, configs, package, run.sh) that runs this "
        "recipe on another machine, e.g. a GPU box without network; train nothing here",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="processes that make each missing data set (default 1)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from m2aenet.atomic import check_output_folder
    from m2aenet.recipe.runner import describe, run_recipe
    from m2aenet.recipe.spec import load_recipe

    recipe = load_recipe(args.recipe)
    out = Path(args.out or recipe.out)
    if args.plan:
        print(describe(recipe, out))
        return 0
    if args.bundle:
        from m2aenet.recipe.bundle import bundle_size, write_bundle

        folder = write_bundle(recipe, args.bundle)
        print(
            f"recipe: wrote {folder} ({bundle_size(folder) / 1e6:.1f} MB); on the other "
            f"machine: sh {folder.name}/run.sh MINUTES"
        )
        return 0
    check_output_folder(out, "--out")
    command = ["m2aenet", "recipe", args.recipe]
    command += ["--out", args.out] if args.out else []
    result = run_recipe(
        recipe,
        out,
        minutes=args.minutes,
        data_only=args.data_only,
        progress=not args.no_progress,
        command=command,
        workers=args.workers,
    )
    if args.data_only:
        made = ", ".join(result["data_made"]) or "nothing (all made)"
        print(f"recipe: data made: {made}")
    elif result["done"]:
        print(f"recipe: done; weights {result['shipped']}")
    else:
        print(
            f"recipe: stopped in stage {result['stopped_at']}; run the same command again to "
            "continue"
        )
    return 0
