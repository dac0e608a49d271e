"""Tight quotes: the clauses of a long quote that hold what the question asks, at exact article offsets.

Arabic news runs sentences on with commas, so a "sentence" can be 600 characters of which the answer is 40. A quote
longer than `RAG_QUOTE_CHARS` is cut to the run of its clauses (split after a comma, semicolon, colon or dash; a
clause longer than a third of the limit at word boundaries) that holds the most of the question's weighted terms,
within the limit, and that holds the short answer where there is one. The whole passage stays in the citation.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_CUT = re.compile(r"[،,؛;:]+\s+|\s+[-–—]+\s+")  # where a clause ends: after its mark, before the next clause
_WORD = re.compile(r"\S+")
_TRAILING = "،,؛;:-–— \t\n"


def clause_units(text: str, start: int, end: int, piece: int) -> list[tuple[int, int]]:
    """text[start:end] as clauses, each (start, end) with its closing mark; a clause longer than `piece` is cut into
    runs of whole words of about `piece` characters."""
    bounds, a = [], start
    for m in _CUT.finditer(text, start, end):
        bounds.append((a, m.start() + len(m.group().rstrip())))
        a = m.end()
    if a < end:
        bounds.append((a, end))
    units: list[tuple[int, int]] = []
    for a, b in bounds:
        if b - a <= piece:
            units.append((a, b))
            continue
        run_start = run_end = None
        for w in _WORD.finditer(text, a, b):
            if run_start is not None and w.end() - run_start > piece:
                units.append((run_start, run_end))
                run_start = None
            if run_start is None:
                run_start = w.start()
            run_end = w.end()
        if run_start is not None:
            units.append((run_start, run_end))
    return units


def tight_span(
    text: str,
    start: int,
    end: int,
    weigh: Callable[[str], float],
    limit: int,
    keep: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """The part of text[start:end] to quote: all of it when it is at most `limit` characters (or `limit` is 0), else
    the run of clauses within `limit` that `weigh` (the question's weighted terms found, 0..1) scores highest, the
    longer of equals, that holds text[keep[0]:keep[1]] when `keep` is given; trailing marks are left out."""
    if limit <= 0 or end - start <= limit:
        return start, end
    units = clause_units(text, start, end, max(60, limit // 3))
    best: tuple[tuple[float, int], int, int] | None = None
    for i in range(len(units)):
        for j in range(i, len(units)):
            a, b = units[i][0], units[j][1]
            if b - a > limit:
                break
            if keep is not None and not (a <= keep[0] and keep[1] <= b):
                continue
            key = (round(weigh(text[a:b]), 3), b - a)
            if best is None or key > best[0]:
                best = (key, a, b)
    if best is None:  # the part to keep is wider than the limit: the whole quote
        return start, end
    a, b = best[1], best[2]
    while b > a and text[b - 1] in _TRAILING:
        b -= 1
    return a, max(b, keep[1]) if keep is not None else b
