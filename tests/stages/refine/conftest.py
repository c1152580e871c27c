import pytest

pytest.importorskip("diffusers")
