"""A helper the example ships as a code dependency: job(dependencies=[...]) unpacks it at the
code root, where it imports as a package."""

from __future__ import annotations

import collections
from collections.abc import Iterable


def count_words(lines: Iterable[str]) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for line in lines:
        counts.update(w.strip(".,:;!?").lower() for w in line.split())
    return counts
