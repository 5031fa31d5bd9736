"""Frame sampling: the pure rules, and the seeking extractor against a full decode."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from djref import dj_select
from textsieve.synthetic import TextBlock, VideoSpec
from textsieve.video.frames import Limits, open_video, probe, sample_targets, sample_video
from textsieve.video.sampling import (
    effective_frame_count,
    interval_targets,
    select_from_sequence,
    uniform_targets,
)


def test_uniform_targets_match_data_juicer_formula():
    d = Fraction(10)
    assert uniform_targets(d, 1) == [Fraction(5)]
    assert uniform_targets(d, 2) == [0, 10]
    assert uniform_targets(d, 3) == [0, 5, 10]
    assert uniform_targets(d, 5) == [0, Fraction(5, 2), 5, Fraction(15, 2), 10]
    assert uniform_targets(d, 0) == []


def test_frame_count_cap():
    assert effective_frame_count(3, 100) == 3
    assert effective_frame_count(3, 2) == 2
    assert effective_frame_count(3, 0) == 3  # unknown count does not cap
    assert effective_frame_count(3, None) == 3
    with pytest.raises(ValueError):
        effective_frame_count(0, 10)


def test_interval_targets_cap_spreads_over_video():
    assert interval_targets(Fraction(5), Fraction(2), 10) == [0, 2, 4]
    capped = interval_targets(Fraction(600), Fraction(1), 4)
    assert capped == [0, 200, 400, 600]


frame_lists = st.lists(
    st.tuples(st.integers(min_value=1, max_value=5), st.booleans()), min_size=1, max_size=40
).map(
    lambda steps: [
        (Fraction(sum(s for s, _ in steps[: i + 1]) - steps[0][0], 10), key or i == 0)
        for i, (_, key) in enumerate(steps)
    ]
)


@settings(max_examples=400, deadline=None)
@given(frames=frame_lists, raw=st.lists(st.integers(min_value=0, max_value=250), min_size=1, max_size=8))
def test_matcher_equals_data_juicer_model(frames, raw):
    targets = sorted(Fraction(t, 10) for t in raw)
    assert select_from_sequence(frames, targets) == dj_select(frames, targets)


def test_matcher_consumes_frames_within_a_keyframe_interval():
    frames = [(Fraction(0), True), (Fraction(1), False), (Fraction(2), False), (Fraction(3), True)]
    # two targets between frames 0 and 1 take frames 1 and 2, as Data-Juicer does
    assert select_from_sequence(frames, [Fraction(1, 3), Fraction(2, 3)]) == [1, 2]
    # a target at a keyframe's own time may reuse it
    assert select_from_sequence(frames, [Fraction(5, 2), Fraction(3)]) == [3, 3]
    # all targets past the end share one last frame
    assert select_from_sequence(frames, [Fraction(0), Fraction(7), Fraction(9)]) == [0, 3]


def full_decode(path):
    """Every frame of the first video stream: (time, key, rgb)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        tb = Fraction(s.time_base)
        return [(f.pts * tb, bool(f.key_frame), f.to_ndarray(format="rgb24")) for f in c.decode(s)]


SPECS = {
    "gop12_b2": VideoSpec(frames=60, gop=12, bframes=2),
    "gop1_intra": VideoSpec(frames=30, gop=1, bframes=0),
    "gop250_longer_than_video": VideoSpec(frames=90, gop=250, bframes=3),
    "ntsc_29.97_b3": VideoSpec(frames=75, fps=Fraction(30000, 1001), gop=15, bframes=3),
    "film_23.976": VideoSpec(frames=60, fps=Fraction(24000, 1001), gop=24, bframes=1),
    "odd_7fps": VideoSpec(frames=40, fps=Fraction(7), gop=5, bframes=2),
    "mkv_no_stream_duration": VideoSpec(frames=50, container="mkv", gop=10),
    "webm_vp9": VideoSpec(frames=30, container="webm", codec="libvpx-vp9", gop=8),
    "two_frames": VideoSpec(frames=2, gop=1, bframes=0),
    "one_frame": VideoSpec(frames=1, gop=1, bframes=0),
    "faststart_moving_text": VideoSpec(
        frames=50, gop=10, faststart=True, blocks=(TextBlock("ticker", 0, 100, dx=3),)
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_seek_extractor_is_bit_identical_to_full_decode(make_video, name, n):
    path = str(make_video(SPECS[name], name))
    sampled = sample_video(path, n)
    frames = full_decode(path)
    with open_video(path) as c:
        info = probe(c, path, Limits())
    targets = sample_targets(info, n, "uniform", 1.0)
    expected = dj_select([(t, k) for t, k, _ in frames], targets)
    assert [float(frames[i][0]) for i in expected] == sampled.times
    for i, image in zip(expected, sampled.images):
        assert np.array_equal(frames[i][2], image)


def test_long_gop_video_is_sampled_by_seeking(make_video):
    # 40 s at 5 fps, a keyframe every 2 s: the middle target must not need
    # decoding from the start, and the result still equals a full decode.
    spec = VideoSpec(frames=200, fps=Fraction(5), gop=10, width=160, height=120)
    path = str(make_video(spec, "long_gop10"))
    sampled = sample_video(path, 3)
    frames = full_decode(path)
    expected = dj_select([(t, k) for t, k, _ in frames], uniform_targets(Fraction(40), 3))
    assert sampled.times == [float(frames[i][0]) for i in expected]
    # first frame, then one GOP up to the middle, then the last GOP
    assert sampled.decoded <= 1 + 2 * 10 + 2, sampled.decoded


def test_4k_clip(make_video):
    path = str(make_video(VideoSpec(width=3840, height=2160, frames=8, gop=4, bframes=1), "uhd"))
    sampled = sample_video(path, 3)
    frames = full_decode(path)
    expected = dj_select([(t, k) for t, k, _ in frames], uniform_targets(Fraction(8, 25), 3))
    assert sampled.times == [float(frames[i][0]) for i in expected]
    assert all(img.shape == (2160, 3840, 3) for img in sampled.images)
    for i, image in zip(expected, sampled.images):
        assert np.array_equal(frames[i][2], image)


def test_rgb_conversion_matches_data_juicer_to_image(make_video):
    path = str(make_video(SPECS["gop12_b2"], "gop12_b2"))
    with av.open(path) as c:
        frame = next(c.decode(video=0))
        assert np.array_equal(np.asarray(frame.to_image()), frame.to_ndarray(format="rgb24"))


def test_fewer_frames_than_requested_takes_every_frame(make_video):
    path = str(make_video(SPECS["two_frames"], "two_frames"))
    sampled = sample_video(path, 3)
    assert sampled.times == [0.0, 0.04]


def test_keyframe_sampling_decodes_keyframes_only(make_video):
    path = str(make_video(SPECS["gop12_b2"], "gop12_b2"))
    sampled = sample_video(path, 3, method="keyframe")
    assert sampled.times == [0.0, 0.96, 1.92]  # keyframes at or before 0, 1.2 and 2.4 s


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_skipping_non_reference_frames_keeps_the_frames_and_decodes_fewer(make_video, monkeypatch, n):
    """24 s at 25 fps, a keyframe every 10 s, 3 B-frames between references:
    walking to a target deep in a GOP skips the B-frames far from it, and
    the frames picked are still a full decode's, bit for bit."""
    from textsieve.video import frames as frames_module

    spec = VideoSpec(frames=600, fps=Fraction(25), gop=250, bframes=3, width=160, height=120,
                     blocks=(TextBlock("moving", 0, 50, size=20, dx=1),))
    path = str(make_video(spec, "gop250_b3"))
    sampled = sample_video(path, n)
    decoded = full_decode(path)
    expected = dj_select([(t, k) for t, k, _ in decoded], uniform_targets(Fraction(24), n))
    assert sampled.times == [float(decoded[i][0]) for i in expected]
    for i, image in zip(expected, sampled.images):
        assert np.array_equal(decoded[i][2], image)
    monkeypatch.setattr(frames_module, "SKIP_NON_REFERENCE", False)
    plain = sample_video(path, n)
    assert plain.times == sampled.times and sampled.decoded < plain.decoded
