"""What a function's module does once its imports are done: take them out of the garbage
collector's sight.

A cold start allocates hundreds of thousands of objects (modules, classes, functions, then
botocore's models and clients on the first request), and CPython's cyclic garbage collector
runs every 2,000 net allocations, each older generation's pass walking every object it
holds. On a cold webhook request that was 22 ms of garbage collection against 14 ms for
``import boto3`` plus one secret read (``gc.callbacks``, 5 fresh processes, 2026-12-06):
the objects of wxtoken's and powertools' imports were walked again and again while botocore
built its clients. None of them is ever garbage: they live as long as the container.

:func:`gc.freeze` moves every object tracked so far into a permanent generation that later
collections skip (Python's documentation, ``gc.freeze``). Reference counting still frees
them as before; what changes is only that a reference cycle already unreachable when it is
called is never collected, which after the imports is at most a few import-time leftovers,
once. The cold webhook request went from 1.34–1.36× to 1.27× ``import boto3`` plus one secret
read (``bench/cold_import.py``).
"""

from __future__ import annotations

import gc


def settle_imports() -> None:
    """Called once at the end of a function's module, after every import it makes."""
    gc.freeze()
