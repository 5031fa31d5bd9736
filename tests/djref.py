"""An independent model of Data-Juicer's ``extract_video_frames_uniformly``,
written from its description: keyframe seconds from a keyframe-only pass
(0.0 added), targets grouped by keyframe interval, each group searched from
its keyframe with every decoded frame serving at most one target, and the
last decoded frame appended once when a group runs out of frames.

It works on a fully decoded frame list, so it is the test oracle for the
seeking extractor and for :class:`textsieve.video.sampling.TargetMatcher`.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Sequence


def dj_select(frames: Sequence[tuple[Fraction, bool]], targets: Sequence[Fraction]) -> list[int]:
    key_seconds = sorted({float(t) for t, key in frames if key})
    if 0.0 not in key_seconds:
        key_seconds = [0.0] + key_seconds
    # group targets by keyframe interval, as Data-Juicer does
    if len(key_seconds) == 1:
        groups = [list(targets)]
    else:
        groups, group, g, i = [], [], 0, 0
        upper = key_seconds[1]
        while i < len(targets):
            if targets[i] < upper:
                group.append(targets[i])
                i += 1
            else:
                groups.append(group)
                g += 1
                group = []
                if g >= len(key_seconds) - 1:
                    break
                upper = key_seconds[g + 1]
        if group:
            groups.append(group)
        if i < len(targets):
            groups.append(list(targets[i:]))
    picked: list[int] = []
    for g, group in enumerate(groups):
        if not group:
            continue
        # a seek to the keyframe lands on the last frame flagged key at or before it
        start = 0
        if key_seconds[g] != 0.0:
            start = max(j for j, (t, key) in enumerate(frames) if key and float(t) <= key_seconds[g])
        k = 0
        found_all = False
        last = None
        for j in range(start, len(frames)):
            last = j
            if frames[j][0] >= group[k]:
                picked.append(j)
                k += 1
                if k >= len(group):
                    found_all = True
                    break
        if not found_all and last is not None:
            picked.append(last)
    return picked
