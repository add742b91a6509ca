"""Stable seed derivation.

Per-call seeds come from (run seed, namespace, index) through sha256, never ``hash()``
(which changes with PYTHONHASHSEED), so the same inputs give the same bytes in any process.
"""

from __future__ import annotations

import hashlib
import random

import numpy as np


def derive_seed(*parts: object) -> int:
    """A 64-bit seed from any printable parts, stable across processes and platforms."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def rng(*parts: object) -> random.Random:
    """A ``random.Random`` seeded from ``parts`` (see :func:`derive_seed`)."""
    return random.Random(derive_seed(*parts))


def np_rng(*parts: object) -> np.random.Generator:
    """A numpy ``Generator`` seeded from ``parts`` (see :func:`derive_seed`)."""
    return np.random.default_rng(derive_seed(*parts))
