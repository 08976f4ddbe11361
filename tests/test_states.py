"""State policies on the tiny stream model, checked against the numpy reference with literal tables."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from edge.model import HEAD_POOL_COUNT, HEAD_POOL_SUM, StreamModel
from edge.states import CappedPolicy, CumulativePolicy, WindowedPolicy, make_policy

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


@pytest.fixture
def model(tiny_model_path, tiny_labels_path):
    return StreamModel(tiny_model_path, tiny_labels_path)


def distinct_frames(n: int) -> list[np.ndarray]:
    """n solid 8x8 frames, each a different colour, so each recent-history length gives different logits."""
    rng = np.random.default_rng(3)
    colours = rng.integers(0, 256, (n, 3), dtype=np.uint8)
    return [np.broadcast_to(c, (8, 8, 3)).copy() for c in colours]


def first_green_frame(policy, solid, reds: int = 20, greens: int = 30) -> int | None:
    """1-based frame number at which green's logit first exceeds red's (None if never)."""
    for i in range(reds + greens):
        logits = policy.step(solid(RED if i < reds else GREEN))
        if i >= reds and logits[1] > logits[0]:
            return i + 1
    return None


# --------------------------------------------------------------------------- cumulative


def test_cumulative_never_rescales(model, solid, reference):
    policy = CumulativePolicy(model)
    ref = reference()
    counts = []
    for i in range(8):
        frame = solid(RED if i % 2 else GREEN)
        np.testing.assert_allclose(policy.step(frame), ref.step(frame), atol=1e-5, rtol=0)
        counts.append(model.head_frame_count())
    assert counts == [1, 2, 3, 4, 5, 6, 7, 8]
    np.testing.assert_allclose(model.get_state(HEAD_POOL_SUM), ref.sum, atol=1e-5, rtol=0)


# --------------------------------------------------------------------------- capped


def test_capped_keeps_count_at_n_and_rescales_the_sum(model, solid, reference):
    policy = CappedPolicy(model, cap_frames=3)
    ref = reference()
    counts, seen_by_logits = [], []
    frames = [solid(c) for c in [RED, GREEN, RED, (0, 0, 255), GREEN, RED, RED, GREEN, BLUE, RED]]
    for frame in frames:
        logits = policy.step(frame)
        want = ref.step(frame)
        seen_by_logits.append(int(ref.count[0]))  # the count the logits were divided by
        if ref.count[0] >= 6:  # the head has pooled 2N frames: back to N
            ref.cap(3)
        np.testing.assert_allclose(logits, want, atol=1e-5, rtol=0)
        np.testing.assert_allclose(model.get_state(HEAD_POOL_SUM), ref.sum, atol=1e-5, rtol=0)
        counts.append(model.head_frame_count())
    assert seen_by_logits == [1, 2, 3, 4, 5, 6, 4, 5, 6, 4]
    assert counts == [1, 2, 3, 4, 5, 3, 4, 5, 3, 4]


def test_capped_rescale_literal(model, solid):
    # 6 red frames, cap 3: at 2N = 6 frames the sum is [6, 0, 0, 5/3] (the 4th feature is the
    # previous frame's mean, 1/3, for frames 2..6); the cap multiplies it by 3/6
    policy = CappedPolicy(model, cap_frames=3)
    for _ in range(5):
        policy.step(solid(RED))
    assert model.get_state(HEAD_POOL_COUNT).tolist() == [5]  # below 2N: untouched
    policy.step(solid(RED))
    np.testing.assert_allclose(model.get_state(HEAD_POOL_SUM).reshape(4), [3.0, 0.0, 0.0, 5 / 6], atol=1e-6)
    assert model.get_state(HEAD_POOL_COUNT).tolist() == [3]


@pytest.mark.parametrize("policy_factory, frame", [
    # 20 red frames, then green: the frame (1-based) at which green first beats red
    # (cumulative: 21 green of 41 > 20 red; capped: the head holds at most 2N frames)
    (lambda m: CumulativePolicy(m), 41),
    (lambda m: CappedPolicy(m, cap_frames=5), 26),
    (lambda m: CappedPolicy(m, cap_frames=3), 24),
])
def test_colour_switch_frame(model, solid, policy_factory, frame):
    assert first_green_frame(policy_factory(model), solid) == frame


def test_capped_follows_a_change_sooner_than_cumulative(tiny_model_path, solid):
    capped = first_green_frame(CappedPolicy(StreamModel(tiny_model_path), 3), solid)
    cumulative = first_green_frame(CumulativePolicy(StreamModel(tiny_model_path)), solid)
    assert capped is not None and cumulative is not None
    assert capped < cumulative


def test_capped_refuses_a_model_without_head_pool(model):
    model._head = None
    with pytest.raises(ValueError, match="no float head pool"):
        CappedPolicy(model, 3)


def test_policy_reset(model, solid):
    policy = CappedPolicy(model, 3)
    for _ in range(5):
        policy.step(solid(RED))
    policy.reset()
    assert model.head_frame_count() == 0
    np.testing.assert_allclose(policy.step(solid(GREEN)), [0, 10, 0, 0, 0], atol=1e-5)


# --------------------------------------------------------------------------- windowed

# W = 4: stream a steps from frame 1, stream b from frame 3 (half a window late); each is
# reset when it has seen W frames. Per frame: (frames since reset of a, of b, reported stream).
WINDOWED_W4 = [
    (1, 0, "a"),
    (2, 0, "a"),
    (3, 1, "a"),
    (4, 2, "a"),
    (1, 3, "b"),  # frame 5 resets a
    (2, 4, "b"),
    (3, 1, "a"),  # frame 7 resets b
    (4, 2, "a"),
    (1, 3, "b"),  # frame 9 resets a
    (2, 4, "b"),
    (3, 1, "a"),  # frame 11 resets b
    (4, 2, "a"),
]


def test_windowed_reset_schedule_and_reported_stream(tiny_model_path, reference):
    a, b = StreamModel(tiny_model_path), StreamModel(tiny_model_path)
    policy = WindowedPolicy(a, 4, second=b)
    frames = distinct_frames(len(WINDOWED_W4))
    for i, (frame, (age_a, age_b, reported)) in enumerate(zip(frames, WINDOWED_W4)):
        logits = policy.step(frame)
        assert (a.frames, b.frames) == (age_a, age_b), f"frame {i + 1}"
        history = age_a if reported == "a" else age_b
        # the reported logits are those of a fresh model fed just the reported stream's recent frames
        ref = reference()
        for past in frames[i + 1 - history: i + 1]:
            want = ref.step(past)
        np.testing.assert_allclose(logits, want, atol=1e-5, rtol=0, err_msg=f"frame {i + 1}")
        # and not those of the other stream (the test tells the two apart)
        other = age_b if reported == "a" else age_a
        if other:
            ref = reference()
            for past in frames[i + 1 - other: i + 1]:
                not_want = ref.step(past)
            assert not np.allclose(logits, not_want, atol=1e-5), f"frame {i + 1}"


def test_windowed_reset_restarts_the_schedule(tiny_model_path, solid):
    a, b = StreamModel(tiny_model_path), StreamModel(tiny_model_path)
    policy = WindowedPolicy(a, 4, second=b)
    for _ in range(5):
        policy.step(solid(RED))
    policy.reset()
    assert (a.frames, b.frames) == (0, 0)
    ages = []
    for _ in range(3):
        policy.step(solid(GREEN))
        ages.append((a.frames, b.frames))
    assert ages == [(1, 0), (2, 0), (3, 1)]


def test_windowed_clones_the_second_stream(model):
    policy = WindowedPolicy(model, 4)
    first, second = policy.models
    assert first is model
    assert second is not model and second.path == model.path


@pytest.mark.parametrize("window, expected", [(1, 2), (2, 2), (7, 7)])
def test_windowed_window_is_at_least_two(model, window, expected):
    assert WindowedPolicy(model, window).window == expected


# --------------------------------------------------------------------------- make_policy


@pytest.mark.parametrize("name, cls", [
    ("cumulative", CumulativePolicy),
    ("capped", CappedPolicy),
    ("windowed", WindowedPolicy),
])
def test_make_policy_by_name(model, name, cls):
    policy = make_policy(name, model, cap_frames=3, window_frames=6)
    assert isinstance(policy, cls)
    assert policy.name == name


def test_make_policy_unknown_name(model):
    with pytest.raises(ValueError, match="unknown state policy 'sliding'.*cumulative, capped, windowed"):
        make_policy("sliding", model, 3, 6)


def test_make_policy_capped_without_head_pool_falls_back_to_windowed(model, caplog):
    model._head = None
    with caplog.at_level(logging.WARNING, logger="edge.states"):
        policy = make_policy("capped", model, cap_frames=3, window_frames=6)
    assert isinstance(policy, WindowedPolicy)
    assert policy.window == 6
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "edge.states"]
    assert len(warnings) == 1
    assert "windowed" in warnings[0].getMessage() and model.name in warnings[0].getMessage()
