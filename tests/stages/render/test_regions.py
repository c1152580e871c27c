import numpy as np
import pytest

from focuspull.stages.render.regions import plane_regions


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("halo", [0.2, 1.0, 3.0])
def test_rectangles_partition_the_active_tiles(seed, halo):
    rng = np.random.default_rng(seed)
    active = rng.random((20, 30)) > (0.5 + 0.08 * seed)
    owner = np.zeros(active.shape, int)
    for reg in plane_regions(active, halo):
        assert reg.owned.shape == (reg.r1 - reg.r0, reg.c1 - reg.c0)
        assert active[reg.r0:reg.r1, reg.c0:reg.c1][reg.owned].all()
        owner[reg.r0:reg.r1, reg.c0:reg.c1] += reg.owned
    assert np.array_equal(owner, active.astype(int))  # every active tile exactly once


def test_separate_objects_get_separate_rectangles():
    active = np.zeros((30, 60), bool)
    active[0:30, 2:6] = True  # a tall pillar
    active[25:27, 10:60] = True  # a floor strip far from it
    regions = plane_regions(active, 0.5)
    area = sum((r.r1 - r.r0) * (r.c1 - r.c0) for r in regions)
    assert area < 0.25 * active.size  # not one frame-sized box
