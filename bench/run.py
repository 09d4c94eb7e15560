#!/usr/bin/env python3
"""`make bench`: the deploy loop and the no-op image build, one table of medians and ratios.

bench/deploy_bench.py and bench/build_bench.py measure; this prints. Options of both apply
(BENCH_ARGS="--noop-rounds 9 --code-rounds 1 ..."); --only picks one of them.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_bench  # noqa: E402
import deploy_bench  # noqa: E402
import dev_bench  # noqa: E402
import input_bench  # noqa: E402
from common import REPO, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["deploy", "dev", "build", "inputs"])
    deploy_bench.add_arguments(parser)
    dev_bench.add_arguments(parser)
    build_bench.add_arguments(parser)
    input_bench.add_arguments(parser)
    args = parser.parse_args()
    # Byte-compile the toolkit as a regular `pip install` does: with PYTHONDONTWRITEBYTECODE set (as on some CI
    # machines) an editable install would otherwise compile every module of ours on every CLI start.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "toolkit")], check=True)
    rows, goals = [], []
    if args.only in (None, "deploy"):
        rows += deploy_bench.measure(args)
        goals = deploy_bench.goals(rows)
    if args.only in (None, "dev"):  # the code change through `flyte-agents dev`, beside the image-based one
        dev_rows = dev_bench.measure(args)
        rows += dev_rows
        goals += dev_bench.goals(dev_rows)
    if args.only in (None, "build"):
        build_rows = build_bench.measure(args)
        rows += build_rows
        goals += build_bench.goals(build_rows)
    if args.only in (None, "inputs"):
        input_rows = input_bench.measure(args)
        rows += input_rows
        goals += input_bench.goals(input_rows)
    print_table(rows)
    if goals:
        print("\ngoals:\n" + "\n".join(f"  {line}" for line in goals))


if __name__ == "__main__":
    main()
