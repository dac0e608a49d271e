"""The refusal cascade's band: which of the plain model's probabilities are left to the model with the reader's score.

The plain refusal model (word features) decides a question outside the band by its own threshold; inside, the model
with the reader's feature (`RefusalModel.with_reader`) decides by its threshold. Fitted by `python -m bench.calibrate`
on the tuning questions the reader did not train on, per script.
"""

from __future__ import annotations

import sys

import numpy as np

from rag.refusal import FEATURES, READER_FEATURES, RefusalModel

MAX_DEFERRED = 0.4  # at most this share of a script's tuning questions is read by the reader (about 130 ms each)
STEP = 0.02  # grid step of the band's ends
THRESHOLDS = np.arange(0.02, 0.98, 0.01)  # the inner model's thresholds tried


def probabilities(model: RefusalModel, x: np.ndarray) -> np.ndarray:
    """`model`'s probability for each row of `x` (its features' columns, in order)."""
    return np.array([model.probability(dict(zip(model.features, row, strict=True))) for row in x])


def _rates(answered: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Refused (of y == 0) and answered (of y == 1) for each column of `answered` (questions x thresholds)."""
    neg, pos = answered[y == 0], answered[y == 1]
    refused = 1.0 - neg.mean(axis=0) if len(neg) else np.ones(answered.shape[1])
    return refused, pos.mean(axis=0) if len(pos) else np.ones(answered.shape[1])


def fit_band(groups: dict[str, tuple[np.ndarray, np.ndarray]], plain: RefusalModel, inner: RefusalModel, floors):
    """Per script, the band [low, high) of `plain`'s probability and `inner`'s threshold that refuse the most (mean
    over the script's groups) while every group with a floor answers it and at most MAX_DEFERRED of the questions go
    to the reader (fewer break a tie); set on `inner`. `groups` hold READER_FEATURES columns.

    The band starts at `plain`'s threshold: the reader's model may refuse what the word features would answer, never
    answer what they refuse. (A band reaching below it let the reader, which points at "Tirana" in "30 km west of
    Tirana, the capital", answer "ما هي عاصمة أستراليا؟" over the seed article that the word features refused.)"""
    assert inner.features == READER_FEATURES
    for script in ("ar", "en"):
        cross = script == "en"
        mine = [name for name in groups if f"-{script}" in name]
        outer = plain.threshold_for(cross)
        data = {
            n: (
                probabilities(plain, groups[n][0][:, : len(FEATURES)]),
                probabilities(inner, groups[n][0]),
                groups[n][1],
            )
            for n in mine
        }
        total = sum(len(y) for _, _, y in data.values())
        best = (-1.0, 0.0, (0.0, 0.0), 0.5)  # refused, -deferred, band, threshold
        for high in np.arange(outer + STEP, 1.0 + 1e-9, STEP):  # the band starts at `outer`: see the docstring
            bands = {n: (po >= outer) & (po < high) for n, (po, _, _) in data.items()}
            deferred = sum(int(b.sum()) for b in bands.values()) / total
            if deferred > MAX_DEFERRED:
                continue
            ok, refused = np.ones(len(THRESHOLDS), dtype=bool), np.zeros(len(THRESHOLDS))
            for n, (po, pi, y) in data.items():
                answered = np.where(bands[n][:, None], pi[:, None] >= THRESHOLDS, (po >= outer)[:, None])
                r, a = _rates(answered, y)
                refused += r / len(data)
                ok &= a >= floors.get(n, 0.0)
            if ok.any():
                i = int(np.argmax(np.where(ok, refused, -1.0)))
                key = (round(float(refused[i]), 4), -deferred)
                if key > best[:2]:
                    best = (*key, (round(float(outer), 2), round(float(high), 2)), round(float(THRESHOLDS[i]), 2))
        if best[0] < 0:
            raise SystemExit(f"no cascade band answers every {script} group's floor: the floors need a look")
        refused, deferred, band, threshold = best
        if cross:
            inner.band_cross, inner.threshold_cross = band, threshold
        else:
            inner.band, inner.threshold = band, threshold
        print(
            f"cascade {script}: plain threshold {outer:.2f}, reader's model decides [{band[0]:.2f}, {band[1]:.2f}) "
            f"at {threshold:.2f}: refused {refused:.3f} (mean of the groups), read by the reader {-deferred:.2f}",
            file=sys.stderr,
        )
        for n, (po, pi, y) in data.items():
            in_band = (po >= band[0]) & (po < band[1])
            answered = np.where(in_band, pi >= threshold, po >= outer)[:, None]
            r, a = _rates(answered, y)
            alone = _rates((po >= outer)[:, None], y)
            print(
                f"  {n}: cascade {r[0]:.2f}/{a[0]:.2f}, plain alone {alone[0][0]:.2f}/{alone[1][0]:.2f}",
                file=sys.stderr,
            )
