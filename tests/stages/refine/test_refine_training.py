"""Training: ray-traced truth, a tiny stage-1 run whose validation loss falls, stage 2/3 freezing, resume."""
import json

import numpy as np
import pytest
import torch

from focuspull.errors import InputError
from focuspull.stages.aperture import Aperture
from focuspull.stages.refine.model import RefinerModel
from focuspull.stages.refine.training.loop import STAGES, TrainConfig, _TrainingClips, loss_of, train_stage
from focuspull.stages.refine.training.raytrace import aperture_samples, pinhole, trace
from focuspull.stages.refine.training.scenes import VALIDATION_SEED0, make_clip

TINY = dict(block_channels=[8, 16], norm_groups=4, embed_dim=16, num_bands=4, tile_size=24, tile_overlap=8,
            window=4, window_overlap=2)


def tiny_cfg(out, **changes):
    base = dict(out=out, stage=1, steps=200, clips_per_step=1, size=24, lr=2e-3, val_every=100, val_clips=3,
                checkpoint_every=50, aperture_samples=24, max_coc_px=6.0, train_pool=6, model_config=TINY)
    base.update(changes)
    return TrainConfig(**base)


def _pool_loss(model, clips):
    with torch.no_grad():
        return float(np.mean([float(loss_of(model, [c], 4, 0.0, torch.device("cpu"))) for c in clips]))


def test_a_tiny_model_learns_on_the_cpu(tmp_path):
    """A few hundred CPU steps on a fixed pool of ray-traced clips: the loss on those clips
    falls well below the classical render's (the optimiser, loss and zero-init head work),
    and the validation loss -- on disjoint seeds, logged at 0/100/200 -- must not get worse
    than the classical render's.  (Measured: pool 0.0113 -> 0.0098; validation 0.0162 -> 0.0169,
    +4 %: this tiny model does not generalise, see docs/refine.md.)"""
    cfg = tiny_cfg(tmp_path)
    pool = _TrainingClips(cfg, STAGES[1]).pool
    before = _pool_loss(RefinerModel(**TINY), pool)  # zero head = the classical render
    result = train_stage(cfg)
    assert result["steps"] == 200
    after = _pool_loss(RefinerModel.from_pretrained(tmp_path, low_cpu_mem_usage=False), pool)
    assert after < 0.93 * before
    assert result["last_val"] < 1.1 * result["first_val"]
    assert (tmp_path / "config.json").is_file() and (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    log = [json.loads(line) for line in (tmp_path / "stage1" / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "val_loss" in e] == [0, 100, 200]


def test_resume_continues_to_the_same_weights(tmp_path):
    """A run killed after step 2 (checkpoint every step) and run again ends where an
    uninterrupted run ends, bit for bit."""
    small = dict(steps=4, checkpoint_every=1, val_every=1, train_pool=2, val_clips=1)
    train_stage(tiny_cfg(tmp_path / "once", **small))

    def kill_at_step_3(line):
        if "step 3/" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stage(tiny_cfg(tmp_path / "twice", **small), log=kill_at_step_3)
    assert not (tmp_path / "twice" / "config.json").exists()
    train_stage(tiny_cfg(tmp_path / "twice", **small))
    a = RefinerModel.from_pretrained(tmp_path / "once", low_cpu_mem_usage=False).state_dict()
    b = RefinerModel.from_pretrained(tmp_path / "twice", low_cpu_mem_usage=False).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stage_2_trains_only_temporal_layers_and_stage_3_only_the_decoder(tmp_path):
    train_stage(tiny_cfg(tmp_path, steps=2, train_pool=1, val_clips=1))
    before = RefinerModel.from_pretrained(tmp_path, low_cpu_mem_usage=False).state_dict()
    train_stage(tiny_cfg(tmp_path, stage=2, steps=2, train_pool=1, val_clips=1))
    after2 = RefinerModel.from_pretrained(tmp_path, low_cpu_mem_usage=False).state_dict()
    changed = {k for k in before if not torch.equal(before[k], after2[k])}
    assert changed and all("temporal" in k for k in changed)
    train_stage(tiny_cfg(tmp_path, stage=3, steps=2, train_pool=1, val_clips=1))
    after3 = RefinerModel.from_pretrained(tmp_path, low_cpu_mem_usage=False).state_dict()
    changed = {k for k in after2 if not torch.equal(after2[k], after3[k])}
    assert changed and all(k.startswith(("up_", "conv_norm_out", "conv_out")) for k in changed)


def test_stage_2_without_a_stage_1_model_says_what_to_run(tmp_path):
    with pytest.raises(InputError, match="--stage 1"):
        train_stage(tiny_cfg(tmp_path, stage=2))


def test_the_thin_lens_tracer_sees_behind_a_blurred_foreground():
    """An opaque near half-plane over a bright far plane: the pinhole sees only the near
    layer left of the edge; the lens rays reach around it, so light from behind leaks in."""
    h = w = 32
    margin = 12
    near = torch.zeros((4, h + 2 * margin, w + 2 * margin))
    near[3, :, : margin + w // 2] = 1.0  # opaque left half, colour 0 (black)
    far = torch.ones((4, h + 2 * margin, w + 2 * margin))
    layers = torch.stack([near, far])
    samples = aperture_samples(Aperture(), 200, np.random.default_rng(0))
    image, depth = pinhole(layers, torch.tensor([1.0, 10.0]), margin)
    assert float(image[:, :, w // 2 - 3].max()) == 0.0 and float(depth[0, 0]) == 1.0
    lens = trace(layers, torch.tensor([-8.0, 0.0]), margin, samples)  # near blurred, far in focus
    assert float(lens[0, 16, w // 2 - 3]) > 0.2  # the far plane shows through the blurred edge
    sharp = trace(layers, torch.tensor([0.0, 0.0]), margin, samples)
    assert torch.allclose(sharp, image, atol=1e-6)  # in focus everywhere = the pinhole image


def test_clips_are_a_function_of_their_seed_and_splits_are_disjoint():
    a = make_clip(5, 2, 24, max_coc_px=6.0, aperture_count=16)
    b = make_clip(5, 2, 24, max_coc_px=6.0, aperture_count=16)
    assert np.array_equal(a.truth, b.truth) and np.array_equal(a.classical, b.classical)
    assert a.truth.shape == (2, 24, 24, 3) and np.abs(a.coc_px).max() <= 6.0 + 1e-4
    from focuspull.stages.refine.training.loop import training_seed

    assert max(training_seed(s, st, step, i, 4) for s in (0, 99) for st in (1, 2, 3)
               for step in (0, 10**6) for i in range(4)) < VALIDATION_SEED0


def test_perturbed_depth_changes_the_coc_but_not_the_truth():
    a = make_clip(7, 2, 24, max_coc_px=6.0, aperture_count=16)
    b = make_clip(7, 2, 24, perturb=True, max_coc_px=6.0, aperture_count=16)
    assert np.array_equal(a.truth, b.truth)
    assert not np.array_equal(a.coc_px, b.coc_px)


def test_the_validation_loss_falls(tmp_path):
    """A tiny model trained 300 CPU steps on 120 ray-traced clips, with the benchmark-aligned
    loss, gets better on the disjoint validation seeds: the benchmark's own error
    (display-referred MSE) falls by more than 2 % and the validation loss falls too.
    (Measured: display MSE -3.5 %, loss -0.9 %.)  The figures are small because the model
    is; the shipped model's are in its MODEL_CARD.md."""
    cfg = tiny_cfg(tmp_path, steps=300, clips_per_step=2, train_pool=120, val_every=300, val_clips=8, lr=2e-3,
                   checkpoint_every=300, display_weight=1.0)
    result = train_stage(cfg)
    assert result["last_val_display_mse"] < 0.98 * result["first_val_display_mse"]
    assert result["last_val"] < result["first_val"]


def test_hidden_emitter_clips_hide_hdr_light_behind_an_in_focus_outline():
    """``hidden_fraction=1``: emitters sit on layers behind the front cut-out, on its outline,
    and the clip focuses on that cut-out (CoC 0 there), so the lens sees light around an in-focus
    edge that the pinhole image partly hides; ``hidden_fraction=0`` leaves the clip unchanged."""
    from focuspull.stages.refine.training.scenes import random_scene

    layers, depths, front = random_scene(np.random.default_rng(3), 24, 24, 4, np.random.default_rng(4))
    assert front is not None and front < len(depths) - 1
    cover = layers[front, 3]
    outline = ((cover > 0.05) & (cover < 0.95)).float()[None, None]
    near_outline = torch.nn.functional.max_pool2d(outline, 9, stride=1, padding=4)[0, 0] > 0
    behind = layers[front + 1:, :3].amax(dim=(0, 1))  # premultiplied colour of the layers behind
    assert float(behind[near_outline].max()) > 5.0  # HDR light within 4 px of the outline
    clip = make_clip(11, 1, 24, max_coc_px=6.0, aperture_count=16, hidden_fraction=1.0)
    assert float((np.abs(clip.coc_px) < 1e-4).mean()) > 0.02  # a layer is exactly in focus
    plain = make_clip(11, 1, 24, max_coc_px=6.0, aperture_count=16)
    again = make_clip(11, 1, 24, max_coc_px=6.0, aperture_count=16, hidden_fraction=0.0)
    assert np.array_equal(plain.truth, again.truth) and not np.array_equal(plain.truth, clip.truth)


def test_hidden_emitters_reach_the_training_clips_but_not_the_validation_split(tmp_path):
    cfg = tiny_cfg(tmp_path, train_pool=2, hidden_fraction=1.0)
    pool = _TrainingClips(cfg, STAGES[1]).pool
    assert all(float((np.abs(c.coc_px) < 1e-4).mean()) > 0.02 for c in pool)  # focused on the hiding layer
    from focuspull.stages.refine.training.loop import validation_clips

    val = validation_clips(cfg, STAGES[1])[0]
    assert np.array_equal(val.truth, make_clip(VALIDATION_SEED0, 4, 24, max_coc_px=6.0, aperture_count=24).truth)


def test_stage_1_can_grow_a_trained_model_by_a_context_level(tmp_path):
    """``--grow-context``: the model in --out gets a zero-initialised context level, so its
    step-0 validation loss is the 2-level model's exactly; the level trains; a resumed run
    grows the same model again and continues; later stages keep it."""
    train_stage(tiny_cfg(tmp_path / "base", steps=1, train_pool=1, val_clips=1))
    for name in ("plain", "grown"):
        (tmp_path / name).mkdir()
        for f in ("config.json", "diffusion_pytorch_model.safetensors"):
            (tmp_path / name / f).write_bytes((tmp_path / "base" / f).read_bytes())
    plain = train_stage(tiny_cfg(tmp_path / "plain", steps=2, train_pool=1, val_clips=1))
    grown = train_stage(tiny_cfg(tmp_path / "grown", steps=2, train_pool=1, val_clips=1, grow_context=(16,)))
    assert grown["first_val"] == plain["first_val"]
    model = RefinerModel.from_pretrained(tmp_path / "grown", low_cpu_mem_usage=False)
    assert list(model.config.context_channels) == [16]
    assert model.context_out.weight.abs().max() > 0  # the new level was trained
    # Run again (the checkpoint says the stage is done): the same grown model, no error.
    train_stage(tiny_cfg(tmp_path / "grown", steps=2, train_pool=1, val_clips=1, grow_context=(16,)))
    with pytest.raises(InputError, match="already has context"):
        train_stage(tiny_cfg(tmp_path / "grown", steps=3, train_pool=1, val_clips=1, grow_context=(24,)))
    train_stage(tiny_cfg(tmp_path / "grown", stage=2, steps=1, train_pool=1, val_clips=1))
    assert list(RefinerModel.from_pretrained(tmp_path / "grown", low_cpu_mem_usage=False).config.context_channels) == [16]
