"""``python -m bench NAME [options]`` runs one benchmark; ``python -m bench all`` runs each with
its defaults. ``python -m bench NAME --help`` lists a benchmark's options.

The benchmarks and what each measures are listed in ``bench/registry.py`` (and by ``--help``).

``python -m bench results`` prints the saved results (bench/results/*.json) as the Markdown
table the README quotes.
"""
from __future__ import annotations

import importlib
import sys

from bench.common import markdown, report, save
from bench.registry import BENCHMARKS


def usage() -> str:
    width = max(map(len, BENCHMARKS))
    return __doc__ + "\n" + "\n".join(f"  {name:<{width}}  {what}" for name, what in BENCHMARKS.items()) + "\n"


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] == "results":
        print(markdown())
        return 0
    names = list(BENCHMARKS) if argv[0] == "all" else [argv[0]]
    if names[0] not in BENCHMARKS:
        print(f"unknown benchmark {argv[0]!r}; one of: {', '.join(BENCHMARKS)}, all", file=sys.stderr)
        return 2
    options = [] if argv[0] == "all" else argv[1:]
    everything = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        measurements = module.main(options)
        path = save(name, measurements)
        report(measurements)
        print(f"saved {path}")
        everything += measurements
    missed = [m for m in everything if m.ok is False]
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
