"""Cycles stills as training data: loading, crops that keep the blur, training on them."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from focuspull.errors import InputError
from focuspull.stages.refine.training.cycles import load_scene, random_crop, scene_folders, validation_crops
from focuspull.stages.refine.training.loop import STAGES, TrainConfig, _TrainingClips, train_stage

DATA = Path(__file__).parent / "data" / "cycles"  # 48x48 windows of generated training scenes
REPO = Path(__file__).resolve().parents[3]
TINY = dict(block_channels=[8, 16], norm_groups=4, embed_dim=16, num_bands=4, tile_size=32, tile_overlap=8,
            window=4, window_overlap=2)


def test_a_scene_loads_with_its_classical_render_and_coc():
    scene = load_scene(DATA / "val" / "0000013")
    meta = json.loads((DATA / "val" / "0000013" / "scene.json").read_text())
    assert scene.aif.shape == scene.classical.shape == scene.truth.shape == (48, 48, 3)
    assert scene.coc_px.shape == (48, 48) and np.isfinite(scene.coc_px).all()
    # Behind the focal plane the CoC is positive (depth convention), and blur is real.
    assert meta["z_max_m"] > meta["focus_distance_m"] and scene.coc_px.max() > 1.0
    assert not np.allclose(scene.classical, scene.aif)
    assert scene.error.shape == (48, 48) and scene.error.max() > 0


def test_a_crop_keeps_every_pixels_blur(tmp_path):
    """bench/cycles/crop_scene.py scales the sensor with the window: the CoC of a pixel is
    the same in the crop as in the frame it was cut from."""
    sys.path.insert(0, str(REPO / "bench" / "cycles"))
    import crop_scene  # noqa: PLC0415

    src = DATA / "val" / "0000013"
    crop_scene.crop(src, tmp_path / "c", x=8, y=4, width=32, height=36)
    whole, part = load_scene(src), load_scene(tmp_path / "c")
    np.testing.assert_allclose(part.coc_px, whole.coc_px[4:40, 8:40], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(part.truth, whole.truth[4:40, 8:40])
    with pytest.raises(SystemExit, match="outside"):
        crop_scene.crop(src, tmp_path / "d", x=40, y=0, width=32, height=32)


def test_training_crops_carry_the_whole_frames_strength():
    scene = load_scene(DATA / "train" / "0000010")
    rng = np.random.default_rng(3)
    for _ in range(5):
        clip = random_crop(scene, 32, rng)
        assert clip.all_in_focus.shape == (1, 32, 32, 3) and clip.coc_px.shape == (1, 32, 32)
        assert clip.strength_px[0] == pytest.approx(scene.strength_px)  # not the crop's own K
    crops = validation_crops([scene], 32)
    assert len(crops) == 4  # 2 x 2 tiles cover the 48 px frame
    with pytest.raises(InputError, match="larger than"):
        random_crop(scene, 64, rng)


def test_a_folder_without_scenes_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "0000001.tmp").mkdir()  # an interrupted render is not a scene
    (tmp_path / "0000001.tmp" / "scene.json").write_text("{}")
    with pytest.raises(InputError, match="make_training_scenes"):
        scene_folders(tmp_path)


def test_a_stage_trains_on_cycles_crops_mixed_with_ray_traced_clips(tmp_path):
    cfg = TrainConfig(out=tmp_path, stage=1, steps=6, clips_per_step=2, size=32, lr=1e-3, val_every=3,
                      checkpoint_every=6, aperture_samples=16, max_coc_px=6.0, model_config=TINY,
                      display_weight=1.0, cycles_data=DATA / "train", cycles_val=DATA / "val", cycles_fraction=0.5)
    source = _TrainingClips(cfg, STAGES[1])
    kinds = [source.is_cycles(s) for s in range(6)]
    assert any(kinds) and not all(kinds)  # both kinds of steps, a pure function of the step
    assert kinds == [_TrainingClips(cfg, STAGES[1]).is_cycles(s) for s in range(6)]
    assert all(c.coc_px.shape[0] == (1 if k else 4) for s, k in enumerate(kinds) for c in source.at(s))
    result = train_stage(cfg)
    log = [json.loads(line) for line in (tmp_path / "stage1" / "log.jsonl").read_text().splitlines()]
    vals = [e for e in log if "val_loss" in e]
    assert [e["step"] for e in vals] == [0, 3, 6]
    assert all(e["val_display_mse"] > 0 for e in vals)
    assert result["first_val_display_mse"] == vals[0]["val_display_mse"]
    # Stage 2 (temporal) never uses stills: its clips are ray-traced 8-frame windows.
    assert not _TrainingClips(TrainConfig(**{**cfg.__dict__, "stage": 2, "train_pool": 0}), STAGES[2]).cycles
