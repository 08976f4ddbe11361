"""edge.prediction: softmax, top_k (ties by class index), the immutable Prediction, event wall times."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from edge.prediction import Prediction, Scored, event_wall, iso_wall, ranked, softmax, top_k
from edge.smoothing import Event


@pytest.mark.parametrize("values, k, expected", [
    ([0.1, 0.5, 0.2, 0.9], 2, [3, 1]),
    ([0.1, 0.5, 0.2, 0.9], 1, [3]),
    ([0.1, 0.5, 0.2, 0.9], 4, [3, 1, 2, 0]),
    ([0.1, 0.5, 0.2, 0.9], 10, [3, 1, 2, 0]),  # k larger than the vector: all of it
    ([0.1, 0.5, 0.2, 0.9], 0, [3]),  # at least one
    ([-3.0, -1.0, -2.0], 2, [1, 2]),
    ([0.3, 0.3, 0.3], 1, [0]),  # ties: the lower class index first
    ([0.3, 0.3, 0.3], 2, [0, 1]),
    ([0.1, 0.4, 0.2, 0.4, 0.4], 2, [1, 3]),
    ([0.1, 0.4, 0.2, 0.4, 0.4], 4, [1, 3, 4, 2]),
    ([0.5, 0.5], 5, [0, 1]),
])
def test_top_k_literal(values, k, expected):
    assert top_k(np.array(values, np.float32), k).tolist() == expected


def test_top_k_equals_full_stable_sort_on_random_and_tied_vectors():
    rng = np.random.default_rng(0)
    for n in (5, 600, 1000):
        for k in (1, 3, 5):
            probs = rng.random(n).astype(np.float32)
            assert top_k(probs, k).tolist() == np.argsort(-probs, kind="stable")[:k].tolist()
            tied = np.round(probs * 4) / 4  # only 5 distinct values: many ties
            assert top_k(tied, k).tolist() == np.argsort(-tied, kind="stable")[:k].tolist()


@pytest.mark.parametrize("k", [1, 2, 16, 17, 40, 599, 600])  # the argmax scans (k <= 16) and the sort
def test_top_k_is_the_stable_sort_on_both_paths_with_ties_infinities_and_integers(k):
    rng = np.random.default_rng(k)
    for _ in range(20):
        tied = rng.integers(0, 4, 600).astype(np.float32)
        with_inf = tied.copy()
        with_inf[rng.choice(600, 590, replace=False)] = -np.inf  # fewer finite values than k: -inf ones follow
        for probs in (tied, with_inf, tied.astype(np.float64), tied.astype(np.int64)):
            assert top_k(probs, k).tolist() == np.argsort(-probs, kind="stable")[:k].tolist()
            assert [s.label for s in ranked([str(i) for i in range(600)], probs, k)] == \
                [str(i) for i in top_k(probs, k)]


def test_the_top_1_never_depends_on_k():
    rng = np.random.default_rng(2)
    for _ in range(200):
        probs = rng.integers(0, 3, 8).astype(np.float32)  # heavy ties
        full = top_k(probs, 8).tolist()
        for k in range(1, 9):
            assert top_k(probs, k).tolist() == full[:k]


def test_softmax_sums_to_one_and_keeps_order():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 5, 600).astype(np.float32)
    p = softmax(logits)
    assert p.dtype == np.float32
    assert p.sum() == pytest.approx(1.0, abs=1e-5)
    assert (p >= 0).all()
    assert np.argmax(p) == np.argmax(logits)
    np.testing.assert_allclose(softmax(np.array([0.0, np.log(3.0)], np.float32)), [0.25, 0.75], atol=1e-6)


def test_softmax_is_stable_for_large_logits_and_leaves_its_input_alone():
    logits = np.array([1000.0, 1001.0, 1002.0], np.float32)
    p = softmax(logits)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, softmax(np.array([0.0, 1.0, 2.0], np.float32)), atol=1e-6)
    assert p.sum() == pytest.approx(1.0, abs=1e-6)
    assert logits.tolist() == [1000.0, 1001.0, 1002.0]


def test_ranked_names_the_labels_best_first():
    got = ranked(["a", "b", "c"], np.array([0.2, 0.5, 0.3]), 2)
    assert got == [Scored("b", 0.5), Scored("c", 0.3)]
    assert got[0].as_dict() == {"label": "b", "score": 0.5}


def make(**kw) -> Prediction:
    fields = dict(t=2.0, wall=1_700_000_000.0, seq=10, probs=np.array([0.2, 0.8]), top=[Scored("b", 0.8)],
                  smoothed=np.array([0.3, 0.7]), smoothed_top=[Scored("b", 0.7)], scores={"r": 0.7},
                  latency={"total": 0.05})
    fields.update(kw)
    return Prediction(**fields)


def test_a_prediction_cannot_be_changed_after_it_is_made():
    probs = np.array([0.2, 0.8])
    p = make(probs=probs)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.latency = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.latency["total"] = 1.0  # type: ignore[index]
    with pytest.raises(TypeError):
        p.scores["r"] = 0.0  # type: ignore[index]
    with pytest.raises(ValueError):
        p.probs[0] = 1.0
    with pytest.raises(AttributeError):
        p.top.append(Scored("a", 0.2))  # type: ignore[attr-defined]
    probs[0] = 0.5  # the caller's own array is still its own to change
    assert p.latency == {"total": 0.05} and p.top == (Scored("b", 0.8),)


def test_the_feature_is_optional_and_read_only():
    assert make().feature is None
    p = make(feature=np.ones(4, np.float32))
    assert p.feature.shape == (4,) and not p.feature.flags.writeable


def test_event_wall_reads_the_latest_predictions_clock():
    p = make(t=10.0, wall=1_700_000_010.0)
    ev = Event(rule="r", phase="end", t=8.5, score=0.2, start=5.0, peak=0.9, duration=3.5, reason="stopped")
    assert event_wall(ev, p) == pytest.approx(1_700_000_008.5)
    before = time.time()
    assert before <= event_wall(ev, None) <= time.time()


def test_iso_wall_has_milliseconds_and_the_offset():
    text = iso_wall(1_700_000_000.25)
    assert ".250" in text and ("+" in text[-6:] or "-" in text[-6:])
