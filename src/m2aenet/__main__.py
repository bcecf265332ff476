"""`python -m m2aenet` (also what `torchrun -m m2aenet` runs)."""

from m2aenet.cli import entry

if __name__ == "__main__":
    raise SystemExit(entry())
