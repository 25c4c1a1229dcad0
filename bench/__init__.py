"""closedloop's benchmarks: ``python -m bench [name ...]`` (see ``bench/__main__.py``).

Run on demand, never in the test suite. Each prints a table of measurements with the target
each is held to; the README records the latest results and the machine they came from.
"""
