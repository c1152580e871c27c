"""The renderer's blur lookahead: worker threads blur rectangles ahead, results come back in
order, memory stays bounded, errors and cancels leave nothing running; the render stays
bit-for-bit deterministic."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from focuspull.errors import Cancelled
from focuspull.stages.render.layered import _Lookahead, render_coc


def test_results_come_back_in_submission_order_whatever_finishes_first():
    later_done = threading.Event()

    def work(i):
        if i == 0:  # the first item can only finish after the second one has
            assert later_done.wait(10)
        if i == 1:
            later_done.set()
        return i * 10

    with _Lookahead(work, workers=2, depth=3) as ahead:
        for i in range(6):
            ahead.submit((i,))
        assert [(item, result) for item, result in ahead.results()] == [((i,), i * 10) for i in range(6)]


def test_at_most_depth_items_run_ahead_of_the_one_handed_out():
    release = threading.Event()

    def work(i):
        assert release.wait(10)
        return i

    with _Lookahead(work, workers=8, depth=2) as ahead:
        for i in range(10):
            ahead.submit((i,))
        assert sorted(ahead.futures) == [0, 1, 2]  # started before anything was asked for
        release.set()
        results = ahead.results()
        assert next(results) == ((0,), 0)
        assert sorted(ahead.futures) == [1, 2]  # item 3 starts when item 1 is asked for
        assert [item for item, _ in results] == [(i,) for i in range(1, 10)]
        assert not ahead.futures


def test_an_error_in_a_blur_reaches_the_caller_and_stops_the_rest():
    ran = []

    def work(i):
        ran.append(i)
        if i == 1:
            raise ValueError("bad plane")
        return i

    with pytest.raises(ValueError, match="bad plane"):
        with _Lookahead(work, workers=1, depth=1) as ahead:
            for i in range(50):
                ahead.submit((i,))
            for _ in ahead.results():
                pass
    assert max(ran) <= 3  # the queue was dropped, not drained
    assert not [t for t in threading.enumerate() if t.name.startswith("focuspull-blur")]


def _scene(h=96, w=128):
    rng = np.random.default_rng(5)
    image = rng.random((h, w, 3)).astype(np.float32) * 2
    image[40:44, 60:64] = 50.0  # a highlight
    coc = np.tile(np.linspace(-14, 9, w, dtype=np.float32), (h, 1))
    coc[20:70, 20:50] = -12.0  # a blurred foreground block: hidden layer behind its edges
    return image, coc


def test_renders_are_bit_identical_run_after_run():
    image, coc = _scene()
    first = render_coc(image, coc)
    for _ in range(3):
        assert np.array_equal(render_coc(image, coc), first)


def test_a_cancel_inside_the_plane_loop_stops_the_workers():
    image, coc = _scene()
    polls = []

    def cancelled():
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(Cancelled):
        render_coc(image, coc, cancelled=cancelled)
    assert not [t for t in threading.enumerate() if t.name.startswith("focuspull-blur")]
