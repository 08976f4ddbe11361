"""Forgetting: the exact window and EMA maths on literal vectors, and the policies on the tiny stream model."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config import ModelConfig
from edge.engine import Engine
from edge.model import HEAD_POOL_COUNT, HEAD_POOL_SUM, StreamModel
from edge.states import (
    RESUM_EVERY,
    CumulativePolicy,
    ExactEma,
    ExactWindow,
    ema_policy,
    make_policy,
    window_means,
    window_policy,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture
def model(tiny_model_path, tiny_labels_path):
    return StreamModel(tiny_model_path, tiny_labels_path)


def vectors(rows):
    return [np.asarray(r, np.float32) for r in rows]


# --------------------------------------------------------------------------- the maths, literal


@pytest.mark.parametrize("size, pushes, means", [
    (3, [[3, 0], [0, 3], [3, 3], [6, 0], [0, 0]], [[3, 0], [1.5, 1.5], [2, 2], [3, 2], [3, 1]]),
    (1, [[1, 2], [5, 6]], [[1, 2], [5, 6]]),
    (2, [[2, 4], [4, 2], [0, 0]], [[2, 4], [3, 3], [2, 1]]),
])
def test_window_means_the_last_w_and_averages_what_there_is_before(size, pushes, means):
    window = ExactWindow(size, 2)
    got = [window.push(x).copy() for x in vectors(pushes)]
    np.testing.assert_allclose(got, means, atol=1e-6)
    assert window.count == min(size, len(pushes))


def test_window_reset_forgets_everything():
    window = ExactWindow(2, 1)
    for x in vectors([[8], [8], [8]]):
        window.push(x)
    window.reset()
    assert window.count == 0
    np.testing.assert_allclose(window.push(np.float32([2])), [2])


def test_window_recomputes_its_sum_so_rounding_cannot_creep():
    rng = np.random.default_rng(0)
    rows = (rng.standard_normal((1000, 8)) * 1e4).astype(np.float32)
    window = ExactWindow(7, 8)
    for i, x in enumerate(rows):
        got = window.push(x)
    assert i + 1 > 7 * RESUM_EVERY
    np.testing.assert_allclose(got, rows[-7:].astype(np.float64).mean(axis=0), rtol=1e-6)
    window.push(rows[0])  # a full lap after a resum: the ring's exact sum
    np.testing.assert_array_equal(window._sum, np.sum(window._ring, axis=0, dtype=np.float64))


def test_window_rejects_a_size_below_one():
    with pytest.raises(ValueError):
        ExactWindow(0, 4)


@pytest.mark.parametrize("half_life, pushes, means", [
    # half-life 1: alpha 0.5; the first push is taken whole (weight 1), then 0.5 each
    (1, [[4], [0], [0], [8]], [[4], [2], [1], [4.5]]),
    # half-life 3: alpha 0.206 < 1/n for n <= 4: the plain mean of what there is, then the EMA weight
    (3, [[1], [2], [3], [6], [0]], [[1], [1.5], [2], [3], [3 * (1 - 0.2062994740159002)]]),
])
def test_ema_literal(half_life, pushes, means):
    ema = ExactEma(half_life, 1)
    got = [ema.push(x).copy() for x in vectors(pushes)]
    np.testing.assert_allclose(got, means, atol=1e-6)


def test_ema_half_life_halves_an_old_value():
    ema = ExactEma(10, 1)
    ema.count = 100  # long past the start-up average
    ema._m[...] = 1.0
    for _ in range(10):
        got = ema.push(np.float32([0]))
    np.testing.assert_allclose(got, [0.5], atol=1e-6)
    ema.reset()
    np.testing.assert_allclose(ema.push(np.float32([7])), [7])


def test_window_means_of_a_feature_list():
    got = window_means(np.float32([[2, 0], [0, 2], [4, 4]]), 2)
    np.testing.assert_allclose(got, [[2, 0], [1, 1], [2, 3]])


# --------------------------------------------------------------------------- policies on the tiny model


def test_window_policy_literal_logits(model, solid):
    # features: red [1,0,0,0], green [0,1,0,1/3] (previous frame red), blue [0,0,1,1/3]; logits 10 x mean, then 0
    policy = window_policy(model, 2)
    got = [policy.step(solid(c)) for c in (RED, GREEN, BLUE)]
    np.testing.assert_allclose(got, [[10, 0, 0, 0, 0], [5, 5, 0, 10 / 6, 0], [0, 5, 5, 10 / 3, 0]], atol=1e-5)
    np.testing.assert_allclose(policy.feature, [0, 0.5, 0.5, 1 / 3], atol=1e-6)  # what the head scored
    # the backbone's own head pool is held at zero
    assert model.get_state(HEAD_POOL_COUNT)[0] == 0 and not model.get_state(HEAD_POOL_SUM).any()


def test_ema_policy_literal_logits(model, solid):
    policy = ema_policy(model, 1)
    got = [policy.step(solid(c)) for c in (RED, RED, GREEN)]
    # means: red; red; 0.5 red + 0.5 [0,1,0,1/3]
    np.testing.assert_allclose(got, [[10, 0, 0, 0, 0], [10, 0, 0, 10 / 3 / 2, 0], [5, 5, 0, 10 / 3 / 2 * 0.5 + 10 / 6, 0]],
                               atol=1e-5)


def test_cumulative_is_the_original_model(model, solid, reference, tiny_model_path):
    policy = CumulativePolicy(model)
    whole = StreamModel(tiny_model_path, split=False)
    ref = reference()
    for i in range(8):
        frame = solid(RED if i % 2 else GREEN)
        got = policy.step(frame)
        np.testing.assert_array_equal(got, whole.step(frame))
        np.testing.assert_allclose(got, ref.step(frame), atol=1e-5, rtol=0)
    assert model.get_state(HEAD_POOL_COUNT)[0] == 8
    np.testing.assert_allclose(policy.feature, ref.sum.reshape(4) / 8, atol=1e-6)


def first_green_frame(policy, solid, reds: int = 20, greens: int = 30) -> int | None:
    """1-based frame number at which green's logit first exceeds red's (None if never)."""
    for i in range(reds + greens):
        logits = policy.step(solid(RED if i < reds else GREEN))
        if i >= reds and logits[1] > logits[0]:
            return i + 1
    return None


@pytest.mark.parametrize("make, expected", [
    (lambda m: CumulativePolicy(m), 41),  # 21 green of 41 outweigh 20 red
    (lambda m: window_policy(m, 6), 24),  # 4 green of the last 6
    (lambda m: ema_policy(m, 3), 24),
])
def test_how_soon_a_change_is_followed(model, solid, make, expected):
    assert first_green_frame(make(model), solid) == expected


@pytest.mark.parametrize("make", [lambda m: window_policy(m, 3), lambda m: ema_policy(m, 2), CumulativePolicy])
def test_reset_starts_again_like_a_fresh_policy(model, tiny_model_path, solid, make):
    policy = make(model)
    for c in (GREEN, BLUE, GREEN):
        policy.step(solid(c))
    policy.reset()
    fresh = make(StreamModel(tiny_model_path))
    for c in (RED, BLUE):
        np.testing.assert_allclose(policy.step(solid(c)), fresh.step(solid(c)), atol=1e-6)


@pytest.mark.parametrize("name, kind", [("window", "window"), ("ema", "ema"), ("cumulative", "cumulative")])
def test_make_policy_by_name(model, name, kind):
    assert make_policy(name, model, window_frames=4, half_life_frames=2).name == kind


@pytest.mark.parametrize("old", ["capped", "windowed", "sliding"])
def test_make_policy_unknown_names(model, old):
    with pytest.raises(ValueError, match=f"unknown state policy '{old}'.*window, ema, cumulative"):
        make_policy(old, model, window_frames=4, half_life_frames=2)


# --------------------------------------------------------------------------- the engine's feature


def test_engine_feature_is_the_window_mean_the_head_scored(tiny_model_path, tiny_labels_path):
    engine = Engine(ModelConfig(name=str(tiny_model_path), labels=str(tiny_labels_path), window_seconds=0.6))
    rng = np.random.default_rng(4)
    clip = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(9)]
    expected = window_means(engine.clip_features(clip), 3)  # 0.6 s at 5 fps
    for frame, want in zip(clip, expected):
        logits = engine.step(frame)
        assert engine.feature.dtype == np.float32
        np.testing.assert_allclose(engine.feature, want, atol=1e-6)
        np.testing.assert_allclose(logits[:4], 10 * want, atol=1e-5)
    assert engine.split is True


def test_a_tie_goes_to_the_lower_class_index_whatever_k(tiny_model_path, tiny_labels_path, solid):
    from edge.prediction import softmax

    engine = Engine(ModelConfig(name=str(tiny_model_path), labels=str(tiny_labels_path), state_policy="cumulative"))
    engine.step(solid(GREEN))
    probs = softmax(engine.step(solid(RED)))  # logits [5, 5, 0, 1.67, 0]: red and green tie
    assert probs[0] == probs[1]
    assert [engine.top(probs, k)[0].label for k in (1, 2, 3, 5)] == ["red"] * 4
    assert [s.label for s in engine.top(probs, 2)] == ["red", "green"]
