"""bench/refine_cycles_val.py --scales: several correction scales from one forward pass per scene."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import metrics  # noqa: E402  (bench/metrics.py)
import refine_cycles_val  # noqa: E402  (bench/refine_cycles_val.py)

from focuspull.stages.refine import load_refiner  # noqa: E402
from focuspull.stages.refine.model import RefinerModel  # noqa: E402
from focuspull.stages.refine.training.cycles import load_scene  # noqa: E402

VAL = REPO / "tests" / "stages" / "refine" / "data" / "cycles" / "val"  # one 48x48 validation window
TINY = dict(block_channels=[8, 16], norm_groups=4, embed_dim=16, num_bands=4, tile_size=32, tile_overlap=8,
            window=4, window_overlap=2)


def _model(folder: Path, scale: float) -> Path:
    torch.manual_seed(3)
    model = RefinerModel(**TINY, correction_scale=scale)
    with torch.no_grad():  # a non-zero head: the zero-initialised one would predict no correction
        model.conv_out.weight.normal_(0.0, 0.05)
        model.conv_out.bias.normal_(0.0, 0.05)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder


def _scores(out: str) -> dict[float, float]:
    line = next(x for x in out.splitlines() if x.startswith("0000013:"))
    return {float(s): float(db) for s, db in re.findall(r"x([0-9.]+)\s+(-?[0-9.]+) dB", line)}


def test_each_scale_scores_what_the_pipeline_gives_at_that_scale(tmp_path, capsys):
    model = _model(tmp_path / "m", scale=0.5)
    assert refine_cycles_val.main(["--model", str(model), "--scenes", str(VAL), "--scales", "0,0.5,1"]) == 0
    scores = _scores(capsys.readouterr().out)
    scene = load_scene(VAL / "0000013")
    classical = metrics.psnr(scene.classical, scene.truth)
    assert scores[0.0] == pytest.approx(classical, abs=0.006)  # scale 0 = the classical render
    for scale in (0.5, 1.0):
        pipe = load_refiner(_model(tmp_path / f"s{scale}", scale))
        refined = pipe(scene.aif[None], scene.coc_px[None], scene.classical[None]).frames[0]
        assert scores[scale] == pytest.approx(metrics.psnr(refined, scene.truth), abs=0.006)
    assert abs(scores[1.0] - scores[0.0]) > 0.02  # the correction is not nil, so the scales differ
    assert not np.isclose(scores[0.5], scores[1.0], atol=0.01)
