"""A job the spec refuses is refused at submit by the real server, naming the job field."""
from __future__ import annotations

import pytest

from focuspull.errors import JobSpecError
from focuspull.spec.fields import describe, translate
from test_service_support import inband_job, start_server, tiny_clip  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("section, values, field", [
    ("aperture", {"blades": 2, "roundness": 0.5}, "aperture.blades"),
    ("aperture", {"blades": 6, "roundness": 5.0}, "aperture.roundness"),
    ("lens", {"sensor_width_mm": 5e-324}, "lens.sensor_width_mm"),
    ("highlights", {"threshold": 0.5, "gain": 1e308}, "highlights.gain"),
])
def test_a_job_the_spec_refuses_is_refused_at_submit_with_its_field(start_server, section, values, field):
    srv = start_server()
    job = inband_job([1])
    job[section] = {**job.get(section, {}), **values}
    with srv.client() as c:
        with pytest.raises(JobSpecError) as info:
            c.submit(job, inband=tiny_clip([1])).result()
        assert info.value.field == field
        assert info.value.code == "bad_job"
        # Each front end names it in its own words.
        said = translate(info.value.message, info.value.field, "nuke")
        assert describe(field, "nuke") in said and f"'{field}'" not in said
        assert c.ping() is not None  # and the server keeps serving
