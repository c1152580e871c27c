import numpy as np
import pytest
import torch

from focuspull.stages.render.mpi import hidden_layer, place_planes, plane_coordinate, plane_weight


@pytest.mark.parametrize("lo,hi,spacing", [(-32.0, 12.4, 1.0), (0.3, 7.9, 0.5), (-5.0, -1.0, 1.0)])
def test_planes_cover_the_range_with_one_on_the_focal_plane(lo, hi, spacing):
    stack = place_planes(lo, hi, spacing)
    coc = stack.coc_px
    assert coc[0] <= lo and coc[-1] >= hi
    assert np.allclose(np.diff(coc), spacing)
    assert np.any(coc == 0.0)


def test_tent_weights_sum_to_one_and_interpolate():
    stack = place_planes(-4, 4, 1.0)
    coc = torch.linspace(-4, 4, 101)
    f = plane_coordinate(coc, stack)
    weights = torch.stack([plane_weight(f, p) for p in range(stack.count)])
    assert torch.allclose(weights.sum(0), torch.ones(101))
    # The weighted plane CoC reproduces the pixel's CoC: a linear blend, no banding.
    planes = torch.tensor(stack.coc_px, dtype=torch.float32)[:, None]
    assert torch.allclose((weights * planes).sum(0), coc, atol=1e-5)
    assert int((weights > 0).sum(0).max()) <= 2


def _step_scene(fg_coc, bg_coc, light=False, h=64, w=160):
    img = torch.full((1, 3, h, w), 0.2)
    img[..., :, 80:] = 0.6
    if light:
        img[..., 32, 82] = 50.0  # a point light on the background right at the edge
    coc = torch.full((1, 1, h, w), float(bg_coc))
    coc[..., :, :80] = fg_coc
    return img, coc


def test_hidden_layer_carries_the_background_under_a_blurred_foreground():
    img, coc = _step_scene(-12.0, 2.0)
    colour, hid_coc, mask = hidden_layer(img, coc, 1.0, 12.0)
    band = mask[0, 0, 32]
    assert band[:60].sum() == 0 and band[70:80].all()  # a band inside the foreground edge only
    assert band[80:].sum() == 0
    assert torch.allclose(colour[0, :, 32, 70:80], torch.tensor(0.6), atol=0.02)
    assert torch.allclose(hid_coc[0, 0, 32, 70:80], torch.tensor(2.0), atol=0.2)


def test_highlights_next_to_an_edge_are_not_smeared_under_it():
    img, coc = _step_scene(-12.0, 2.0, light=True)
    colour, _, mask = hidden_layer(img, coc, 1.0, 12.0)
    inside = colour[0, 0][mask[0, 0] > 0]
    assert float(inside.max()) < 1.0  # the background is 0.6; the light is 50


def test_no_hidden_layer_on_slanted_surfaces_or_sharp_foregrounds():
    h, w = 64, 96
    ramp = torch.linspace(-20, 20, h)[:, None].expand(h, w)[None, None].contiguous()
    _, _, mask = hidden_layer(torch.rand(1, 3, h, w), ramp, 1.0, 20.0)
    assert mask.sum() == 0
    img, coc = _step_scene(0.0, 10.0)  # an in-focus foreground reveals nothing
    _, _, mask = hidden_layer(img, coc, 1.0, 10.0)
    assert mask.sum() == 0


def test_growing_planes_are_fixed_to_focus_and_coarser_where_the_blur_is_large():
    from focuspull.stages.render.mpi import PLANE_GROWTH
    wide = place_planes(-32.0, 12.0, 1.0, PLANE_GROWTH)
    coc = wide.coc_px
    assert coc[0] <= -32.0 and coc[-1] >= 12.0 and np.any(coc == 0.0)
    # Each gap is max(1 px, growth x the radius of its plane nearer focus): 1 px near focus.
    inner = np.minimum(np.abs(coc[:-1]), np.abs(coc[1:]))
    assert np.allclose(np.diff(coc), np.maximum(1.0, PLANE_GROWTH * inner))
    assert np.allclose(np.diff(coc)[np.abs(coc[1:]) <= 10.0], 1.0)
    assert wide.count < 33 + 13  # fewer than uniform 1 px planes
    # The positions never depend on the frame's range (no plane moves in a focus pull).
    for lo, hi in [(-5.0, 3.0), (-20.0, 30.0), (0.0, 64.0)]:
        narrow = place_planes(lo, hi, 1.0, PLANE_GROWTH)
        shared = np.intersect1d(narrow.coc_px, wide.coc_px)
        both = (narrow.coc_px >= coc[0]) & (narrow.coc_px <= coc[-1])
        assert np.allclose(np.sort(narrow.coc_px[both]), shared)
        assert [narrow.radius_px(i) for i in range(narrow.count)] == list(np.abs(narrow.coc_px))


def test_tent_weights_on_growing_planes_reproduce_the_coc():
    from focuspull.stages.render.mpi import PLANE_GROWTH
    stack = place_planes(-32.0, 12.0, 1.0, PLANE_GROWTH)
    coc = torch.linspace(-32, 12, 2001, dtype=torch.float64)
    coc = torch.cat([coc, torch.tensor(stack.coc_px)])  # exactly on every plane, too
    f = plane_coordinate(coc, stack)
    weights = torch.stack([plane_weight(f, p) for p in range(stack.count)])
    assert torch.allclose(weights.sum(0), torch.ones_like(coc))
    planes = torch.tensor(stack.coc_px)[:, None]
    assert torch.allclose((weights * planes).sum(0), coc, atol=1e-9)
    assert int((weights > 0).sum(0).max()) <= 2
    on_plane = f[-stack.count:]
    assert torch.allclose(on_plane, torch.arange(stack.count, dtype=torch.float64), atol=1e-9)


@pytest.mark.parametrize("radius", [1, 2, 3, 5, 8, 13])
def test_sliding_max_and_box_mean_equal_torch_pooling(radius):
    import torch.nn.functional as F

    from focuspull.stages.render.mpi import _box3_mean, _max_filter, block_max

    x = torch.rand(1, 1, 37, 53) * 10 - 5
    k = 2 * radius + 1
    pooled = F.max_pool2d(F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0)), (1, k), stride=1,
                          padding=(0, radius))
    assert torch.equal(_max_filter(x, radius), pooled)
    step = min(radius + 1, 8)
    assert torch.equal(block_max(x, step), F.max_pool2d(x, step, ceil_mode=True))
    many = torch.rand(1, 5, 19, 23)
    assert torch.allclose(_box3_mean(many), F.avg_pool2d(many, 3, stride=1, padding=1), atol=1e-6)


def test_plane_units_put_every_plane_on_its_index_and_interpolate_linearly_between():
    from focuspull.stages.render.mpi import plane_units

    stack = place_planes(-40.0, 25.0, 1.0, 0.1)
    centres = torch.tensor(stack.coc_px, dtype=torch.float64)
    units = plane_units(centres.view(1, 1, 1, -1), stack).flatten()
    assert torch.allclose(units, torch.arange(stack.first, stack.first + stack.count, dtype=torch.float64),
                          atol=1e-9)
    # Half way (in CoC) between two neighbouring planes is half way in units.
    mid = (centres[:-1] + centres[1:]) / 2
    got = plane_units(mid.view(1, 1, 1, -1), stack).flatten()
    expected = torch.arange(stack.first, stack.first + stack.count - 1, dtype=torch.float64) + 0.5
    assert torch.allclose(got, expected, atol=1e-9)


def test_where_finite_and_any_true_equal_their_torch_forms():
    from focuspull.stages.render.mpi import FAR_AWAY, any_true, where_finite

    gen = torch.Generator().manual_seed(3)
    values = (torch.rand(1, 1, 37, 53, generator=gen) - 0.5) * 1e4
    keep = torch.rand(1, 1, 37, 53, generator=gen) > 0.7
    for other in (FAR_AWAY, -FAR_AWAY, -2.0):
        assert torch.equal(where_finite(keep, values, other), torch.where(keep, values, torch.tensor(other)))
        as_float = keep.float()
        assert torch.equal(where_finite(as_float, values, other), torch.where(keep, values, torch.tensor(other)))
        assert torch.equal(as_float, keep.float())  # the mask is left as it was
    half = where_finite(keep, values.half(), FAR_AWAY)  # capped, not inf: no NaN from 0 * inf
    assert bool(torch.isfinite(half).all()) and torch.equal(half[keep], values.half()[keep])
    assert any_true(keep) and not any_true(keep & False) and not any_true(keep[:, :, :0])
    assert any_true(keep[..., ::3, 1::2]) == bool(keep[..., ::3, 1::2].any())


def test_extend_borders_replicates_the_smoothed_edges_around_the_untouched_frame():
    from focuspull.stages.render.mpi import extend_borders

    gen = torch.Generator().manual_seed(4)
    for h, w in ((1, 1), (1, 6), (6, 1), (9, 14)):
        image = torch.rand(1, 3, h, w, generator=gen)
        coc = torch.rand(1, 1, h, w, generator=gen)
        colour, coc_out = extend_borders(image.permute(0, 1, 3, 2).contiguous().permute(0, 1, 3, 2), coc, 3)
        assert colour.shape == (1, 3, h + 6, w + 6) and colour.is_contiguous()
        assert torch.equal(colour[..., 3:3 + h, 3:3 + w], image)
        assert torch.equal(coc_out, torch.nn.functional.pad(coc, (3, 3, 3, 3), mode="replicate"))
        # Each band repeats one (smoothed) line outwards; each corner block is one pixel's value.
        for band, line in ((colour[..., :3, :], colour[..., :1, :]), (colour[..., -3:, :], colour[..., -1:, :]),
                           (colour[..., :, :3], colour[..., :, :1]), (colour[..., :, -3:], colour[..., :, -1:])):
            assert torch.equal(band, line.expand_as(band))
        assert torch.equal(colour[..., 3, :3], colour[..., 3:4, 0].expand(-1, -1, 3))  # left band: smoothed column


def _scattered_foregrounds(seed):
    """A random frame with 1-3 nearer rectangles (blurred in front of focus), some highlights."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(40, 300, 2))
    img = rng.random((3, h, w)) * (1 + 50 * (rng.random((1, h, w)) > 0.98))
    coc = np.full((h, w), rng.uniform(-5, 20))
    for _ in range(int(rng.integers(1, 4))):
        y0, x0 = (int(v) for v in rng.integers(0, (h, w)))
        coc[y0:y0 + int(rng.integers(5, 80)), x0:x0 + int(rng.integers(5, 80))] = rng.uniform(-40, 5)
    return (torch.from_numpy(img.astype(np.float32))[None], torch.from_numpy(coc.astype(np.float32))[None, None],
            float(np.abs(coc).max()))


@pytest.mark.parametrize("seed", range(12))
def test_hidden_layer_around_the_occluders_equals_the_whole_frame(seed):
    img, coc, reveal = _scattered_foregrounds(seed)
    near = hidden_layer(img, coc, 1.0, reveal)
    whole = hidden_layer(img, coc, 1.0, reveal, window=False)
    assert torch.equal(near[2], whole[2])  # the same hidden surface, pixel for pixel
    there = whole[2] > 0
    assert int(there.sum()) > 50  # every seed has a hidden surface to compare
    # ... with the same colour and CoC there (to float rounding: pooling sums in another order)
    assert torch.allclose(near[0] * there, whole[0] * there, rtol=1e-6, atol=1e-6)
    assert torch.allclose(near[1] * there, whole[1] * there, rtol=1e-6, atol=1e-6)
