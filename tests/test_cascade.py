"""The refusal cascade's calibration (`bench.cascade`): the reader's model is given only questions the word features
would answer, so it can refuse them but never answer what the word features refuse."""

from __future__ import annotations

import numpy as np

from bench.cascade import fit_band
from rag.refusal import FEATURES, READER_FEATURES, RefusalModel


def _model(features: tuple[str, ...], coef: np.ndarray, threshold: float) -> RefusalModel:
    n = len(features)
    return RefusalModel(features, [0.0] * n, [1.0] * n, coef.tolist(), 0.0, threshold, threshold)


def test_the_band_starts_at_the_plain_threshold_and_the_reader_decides_inside_it():
    rng = np.random.default_rng(0)
    plain = _model(FEATURES, rng.normal(size=len(FEATURES)) * 0.3, 0.4)
    plain.threshold_cross = 0.3
    # the reader's model listens to the reader's score alone, which knows the answer
    inner = _model(READER_FEATURES, np.r_[np.zeros(len(FEATURES)), 5.0], 0.5)
    groups = {}
    for name in ("xpara-ar-0", "xpara-en-0"):
        y = (rng.random(400) < 0.5).astype(np.float64)
        x = rng.normal(size=(400, len(READER_FEATURES)))
        x[:, -1] = np.where(y == 1, 1.0, -1.0) + rng.normal(scale=0.2, size=400)
        groups[name] = (x, y)
    fit_band(groups, plain, inner, {"xpara-ar-0": 0.5, "xpara-en-0": 0.5})
    assert inner.band[0] == plain.threshold and inner.band_cross[0] == plain.threshold_cross
    assert inner.band[1] > inner.band[0] and inner.band_cross[1] > inner.band_cross[0]
    # a question the word features refuse is not the reader's to decide, however sure the reader is
    assert not inner.defers(plain.threshold - 0.01, cross=False)
    assert inner.defers(plain.threshold, cross=False)
