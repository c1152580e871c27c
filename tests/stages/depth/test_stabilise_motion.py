"""Motion-compensated depth stabilisation: flow, occlusion, chunk invariance, and the
flicker/PSNR figures on a moving and a static shot (bench/moving_shot.py)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cv2")

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))

from moving_shot import flicker, jitter, moving_shot, psnr, static_shot  # noqa: E402

from focuspull.stages.depth import flow as flow_ops  # noqa: E402
from focuspull.stages.depth.stabilise import DepthStabiliser, FrameMotion, stabilise_frame  # noqa: E402

N_FRAMES, HEIGHT, WIDTH = 16, 180, 320
NEAR_SPEED_PX = 13.0  # ~11 px/frame at the near pillar (d ~ 0.85): a fast dolly
WINDOW = 3


def _stabilise(raw, rgbs, window, motion=True, chunks=None, **options):
    chunks = chunks or [(0, len(raw) - 1)]
    out = {}
    for lo, hi in chunks:
        stabiliser = DepthStabiliser(lambda i: raw[i], 0, len(raw) - 1, window,
                                     get_image=(lambda i: rgbs[i]) if motion else None, **options)
        for t in range(lo, hi + 1):
            out[t] = stabiliser.frame(t)
    return [out[t] for t in range(len(raw))]


def test_flow_follows_a_known_shift_and_flags_what_the_other_frame_cannot_see():
    rgbs, _ = moving_shot(1, 96, 160, 0.0)
    background = rgbs[0]
    a = background.copy()
    b = np.roll(background, (-2, 5), axis=(0, 1))  # content moves 5 px right, 2 px up
    a[30:60, 40:70] = 0.9 * background[10:40, 100:130]  # a square that is only in frame a
    ia, ib = flow_ops.flow_image(a), flow_ops.flow_image(b)
    f_ab, f_ba = flow_ops.dis_flow(ia, ib), flow_ops.dis_flow(ib, ia)
    interior = np.zeros(a.shape[:2], bool)
    interior[10:25, 90:140] = True  # background, far from the square and the frame edge
    assert np.median(f_ab[..., 0][interior]) == pytest.approx(5.0, abs=0.25)
    assert np.median(f_ab[..., 1][interior]) == pytest.approx(-2.0, abs=0.25)
    seen = flow_ops.consistent(f_ab, f_ba)
    assert seen[interior].mean() > 0.95
    # The pixels that leave the frame (the last 5 columns move out) are not seen.
    assert seen[:, -3:].mean() < 0.2
    # The warp brings b back onto a where b sees a's content.
    warped, inside = flow_ops.warp_to(flow_ops.flow_image(b).astype(np.float32), f_ab)
    assert np.abs(warped - ia)[interior & inside].mean() < 3.0


def test_flow_is_deterministic():
    rgbs, _ = moving_shot(2, 72, 128, 10.0)
    ia, ib = flow_ops.flow_image(rgbs[0]), flow_ops.flow_image(rgbs[1])
    assert np.array_equal(flow_ops.dis_flow(ia, ib), flow_ops.dis_flow(ia, ib))


def test_motion_compensated_chunks_equal_one_run_bit_for_bit():
    rgbs, clean = moving_shot(12, 72, 128, NEAR_SPEED_PX * 128 / WIDTH)
    raw = jitter(clean, seed=3)
    single = _stabilise(raw, rgbs, 2)
    chunked = _stabilise(raw, rgbs, 2, chunks=[(0, 3), (4, 8), (9, 11)])
    for t, (a, b) in enumerate(zip(single, chunked)):
        assert np.array_equal(a, b), f"frame {t} differs between chunked and single runs"
    # The free function with a fresh motion object gives the same bits, in any order.
    for t in (11, 5, 0):
        fresh = FrameMotion(lambda i: rgbs[i])
        assert np.array_equal(stabilise_frame(t, lambda i: raw[i], 0, 11, 2, motion=fresh), single[t])


def test_frame_depends_only_on_images_and_depth_inside_its_window():
    rgbs, clean = moving_shot(12, 72, 128, 6.0)
    raw = jitter(clean, seed=4)
    reference = stabilise_frame(5, lambda i: raw[i], 0, 11, 2, motion=FrameMotion(lambda i: rgbs[i]))
    far = [i for i in range(12) if not 3 <= i <= 7]
    bad_depth = [np.full_like(f, 99.0) if i in far else f for i, f in enumerate(raw)]
    bad_rgb = [np.zeros_like(f) if i in far else f for i, f in enumerate(rgbs)]
    got = stabilise_frame(5, lambda i: bad_depth[i], 0, 11, 2, motion=FrameMotion(lambda i: bad_rgb[i]))
    assert np.array_equal(got, reference)
    # ... and an image inside the window does matter (it steers the warp).
    bad_rgb[7] = np.roll(rgbs[7], 9, axis=1)
    got = stabilise_frame(5, lambda i: raw[i], 0, 11, 2, motion=FrameMotion(lambda i: bad_rgb[i]))
    assert not np.array_equal(got, reference)


def test_each_flow_field_is_computed_once_when_frames_are_rendered_in_order():
    rgbs, clean = moving_shot(10, 48, 80, 5.0)
    stabiliser = DepthStabiliser(lambda i: clean[i], 0, 9, 2, get_image=lambda i: rgbs[i])
    for t in range(10):
        stabiliser.frame(t)
    pairs = {(a, b) for a in range(10) for b in range(10) if a != b and abs(a - b) <= 2}
    assert stabiliser.options["motion"].computed == len(pairs)


def test_occluded_neighbour_pixels_do_not_smear_a_moving_edge():
    rgbs, clean = moving_shot(9, 90, 160, 10.0)
    out = stabilise_frame(4, lambda i: clean[i], 0, 8, 3, motion=FrameMotion(lambda i: rgbs[i]))
    edges = np.zeros(clean[4].shape, bool)
    jumps = np.abs(np.diff(clean[4], axis=1)) > 0.1
    edges[:, 1:] |= jumps
    edges[:, :-1] |= jumps
    # Clean depth in, clean depth out: at the edges too, within a sliver of pixels.
    error = np.abs(out - clean[4])
    assert np.mean(error[edges] > 0.05) < 0.05
    assert float(np.median(error)) < 1e-3


@pytest.fixture
def one_torch_thread():
    """Small renders on a shared 2-core machine: torch's pool oversubscribes; results do
    not change."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _renders(rgbs, disparities):
    from focuspull.stages.render.layered import render_coc

    k_px, focus = 14.0 * WIDTH / 192, 0.45
    return [render_coc(rgb, (k_px * (focus - d)).astype(np.float32)) for rgb, d in zip(rgbs, disparities)]


def _scores(rgbs, clean, candidates):
    reference = _renders(rgbs, clean)
    scores = {}
    for name, disparities in candidates.items():
        out = _renders(rgbs, disparities)
        scores[name] = (flicker(out, reference), psnr(out, reference))
    print("\n" + ", ".join(f"{n}: flicker {f:.5f} PSNR {p:.2f} dB" for n, (f, p) in scores.items()))
    return scores


def test_moving_shot_stabilised_render_flickers_half_as_much_and_is_closer(one_torch_thread):
    rgbs, clean = moving_shot(N_FRAMES, HEIGHT, WIDTH, NEAR_SPEED_PX)
    raw = jitter(clean)
    scores = _scores(rgbs, clean, {
        "jittered": raw,
        "in place (no motion)": _stabilise(raw, rgbs, WINDOW, motion=False),
        "motion-compensated": _stabilise(raw, rgbs, WINDOW),
    })
    (f_raw, p_raw), (f_old, p_old), (f_new, p_new) = scores.values()
    assert f_new * 2.0 <= f_raw
    assert p_new > p_raw + 3.0
    # Comparing pixels in place, as before, is clearly worse on this shot.
    assert f_new < 0.8 * f_old and p_new > p_old + 1.0


def test_static_shot_is_at_least_as_good_as_the_in_place_filter(one_torch_thread):
    rgbs, clean = static_shot(N_FRAMES, HEIGHT, WIDTH)
    raw = jitter(clean)
    scores = _scores(rgbs, clean, {
        "jittered": raw,
        "before (in place, sigma 5 %)": _stabilise(raw, rgbs, WINDOW, motion=False, sigma_disparity_rel=0.05),
        "motion-compensated": _stabilise(raw, rgbs, WINDOW),
    })
    (f_raw, _), (f_old, p_old), (f_new, p_new) = scores.values()
    assert f_new <= f_old and p_new >= p_old
    assert f_new * 4.0 <= f_raw
