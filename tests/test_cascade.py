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


def test_a_floor_only_the_reader_could_reach_below_the_threshold_is_an_error_not_a_band_below_it():
    import pytest

    rng = np.random.default_rng(1)
    plain = _model(FEATURES, np.r_[1.0, np.zeros(len(FEATURES) - 1)], 0.5)  # p = sigmoid(the first feature)
    inner = _model(READER_FEATURES, np.r_[np.zeros(len(FEATURES)), 5.0], 0.5)
    y = (rng.random(200) < 0.5).astype(np.float64)
    x = rng.normal(size=(200, len(READER_FEATURES)))
    x[:, -1] = np.where(y == 1, 1.0, -1.0)
    # the word features refuse every question: a third of them (answerable) just under the threshold (p 0.45), the
    # rest far under it (p 0.10); only the reader, given the first ones, could answer any
    near = (y == 1) & (np.arange(200) % 3 == 0)
    x[:, 0] = np.where(near, np.log(0.45 / 0.55), np.log(0.1 / 0.9))
    with pytest.raises(SystemExit, match="no cascade band"):
        fit_band({"xpara-ar-0": (x, y), "xpara-en-0": (x, y)}, plain, inner, {"xpara-ar-0": 0.2})
