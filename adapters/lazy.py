"""Heavy client libraries loaded on first use.

Google's Data Manager client and its hashing helpers take most of a second to import (the
helpers pull in Tink and a KMS client). Every ``closedloop`` command imports the jobs, and the
jobs import the ad-platform adapters, so importing them eagerly made every command, ``status``
and ``report`` included, a second slower. :func:`lazy_module` is the standard library's recipe
(``importlib.util.LazyLoader``): the module object exists at once, and the import runs the first
time one of its attributes is read.
"""
from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """``name``, imported when first used (at once if something imported it already)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
