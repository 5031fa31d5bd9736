"""The end of a single-file export: each output's part file (lines in the order samples
finished, each behind its index) sorted into the final file by index."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from textsieve.data import export
from textsieve.data.export import sort_part


@settings(max_examples=40, deadline=None)
@given(indices=st.lists(st.integers(0, 10**6), unique=True, max_size=40), chunk=st.integers(1, 7),
       seed=st.integers(0, 2**16))
def test_a_part_sorts_by_index_in_chunks_of_any_size(tmp_path_factory, indices, chunk, seed):
    folder = tmp_path_factory.mktemp("sort")
    finished = random.Random(seed).sample(indices, len(indices))
    (folder / "stats.jsonl.part").write_bytes(b"".join(b'%d\t{"index": %d}\n' % (i, i) for i in finished))
    with pytest.MonkeyPatch.context() as patch:
        # the chunk size as small as the lines are few: the on-disk chunks and their merge run too
        patch.setattr(export, "SORT_CHUNK_LINES", chunk)
        sort_part(folder / "stats.jsonl.part", folder / "stats.jsonl")
    assert (folder / "stats.jsonl").read_bytes() == b"".join(b'{"index": %d}\n' % i for i in sorted(indices))
    assert sorted(p.name for p in folder.iterdir()) == ["stats.jsonl", "stats.jsonl.part"]  # no chunk left
