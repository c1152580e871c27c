"""The refiner's model and pipeline: zero-init exactness, save/load, tiles and windows, conditioning."""
import json

import numpy as np
import pytest
import torch

from focuspull.errors import InputError, ModelError
from focuspull.stages.refine import load_refiner
from focuspull.stages.refine.clip import ClipRefiner
from focuspull.stages.refine.conditioning import band_masks, band_thresholds, tone, untone
from focuspull.stages.refine.model import (RefinerModel, decoder_parameter_names, grow_context,
                                           temporal_parameter_names)
from focuspull.stages.refine.pipeline import RefinerPipeline
from focuspull.stages.refine.tiling import piece_weights, windows_covering

TINY = dict(block_channels=(8, 16), norm_groups=4, embed_dim=16, num_bands=4, tile_size=32, tile_overlap=8,
            window=4, window_overlap=2)


def tiny_model(seed=0, random_head=False):
    torch.manual_seed(seed)
    model = RefinerModel(**TINY)
    if random_head:  # a trained model's output layer is not zero
        with torch.no_grad():
            for p in model.parameters():
                if not p.abs().sum():
                    p.normal_(0, 0.05)
    return model


def clip(t=5, h=40, w=70, seed=0):
    rng = np.random.default_rng(seed)
    aif = rng.random((t, h, w, 3)).astype(np.float32) * 2
    aif[:, 5, 7] = 50.0  # an HDR highlight
    coc = rng.uniform(-6, 9, (t, h, w)).astype(np.float32)
    classical = (aif * 0.8 + 0.1).astype(np.float32)
    return aif, coc, classical


def test_untrained_model_returns_the_classical_render_bit_for_bit():
    aif, coc, classical = clip()
    rgba = np.concatenate([classical, np.full(classical.shape[:3] + (1,), 0.5, np.float32)], axis=3)
    out = RefinerPipeline(tiny_model())(aif, coc, rgba).frames
    assert out.shape == rgba.shape and out.dtype == np.float32
    assert np.array_equal(out, rgba)  # several tiles (70 > 32) and windows (5 > 4): still exact


def test_a_trained_head_changes_the_render_and_keeps_alpha():
    aif, coc, classical = clip()
    rgba = np.concatenate([classical, np.full(classical.shape[:3] + (1,), 0.5, np.float32)], axis=3)
    out = RefinerPipeline(tiny_model(random_head=True))(aif, coc, rgba).frames
    assert np.abs(out[..., :3] - classical).max() > 1e-3
    assert np.array_equal(out[..., 3], rgba[..., 3])
    assert np.isfinite(out).all()


def test_save_pretrained_round_trips_config_and_output(tmp_path):
    model = tiny_model(random_head=True)
    model.save_pretrained(tmp_path / "m", safe_serialization=True)
    assert (tmp_path / "m" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = RefinerPipeline.from_pretrained(tmp_path / "m")
    keys = set(TINY) | {"fixed_timestep", "band_exponent", "embed_dim"}
    norm = lambda c: {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in dict(c).items() if k in keys}  # noqa: E731
    assert norm(loaded.config) == norm(model.config)
    aif, coc, classical = clip(t=3)
    a = RefinerPipeline(model)(aif, coc, classical).frames
    b = loaded(aif, coc, classical).frames
    assert np.array_equal(a, b)
    assert load_refiner(tmp_path / "m") is load_refiner(str(tmp_path / "m"))  # loaded once, kept


def test_missing_model_folder_is_a_model_error_with_a_hint(tmp_path):
    with pytest.raises(ModelError, match="config.json"):
        RefinerPipeline.from_pretrained(tmp_path)


def test_bad_inputs_are_refused_before_any_work():
    aif, coc, classical = clip(t=2)
    pipe = RefinerPipeline(tiny_model())
    with pytest.raises(InputError, match="shapes differ"):
        pipe(aif, coc[:, :-1], classical)
    bad = classical.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        pipe(aif, coc, bad)


def test_temporal_and_decoder_parameters_are_separable():
    model = tiny_model()
    temporal = temporal_parameter_names(model)
    assert temporal and all("temporal" in n for n in temporal)
    assert len(temporal) < len(list(model.parameters()))
    assert "conv_out.weight" in decoder_parameter_names(model)
    assert not set(temporal) & set(decoder_parameter_names(model))


@pytest.mark.parametrize("length,size,overlap", [(1, 4, 2), (4, 4, 2), (5, 4, 2), (17, 8, 4), (1080, 64, 16)])
def test_pieces_cover_the_span_with_weights_summing_to_one(length, size, overlap):
    total = np.zeros(length)
    for a, b, w in piece_weights(length, size, overlap):
        assert 0 <= a < b <= length and b - a == min(size, length)
        total[a:b] += w
    assert np.allclose(total, 1.0)


def test_windows_depend_on_the_clip_not_on_the_request():
    assert [(a, b) for a, b, _ in windows_covering(0, 1, 8, 4)] == [(0, 1)]
    assert [(a, b) for a, b, _ in windows_covering(5, 20, 8, 4)] == [(0, 8), (4, 12)]


@pytest.mark.parametrize("context", [(), (16,)])
def test_impulse_across_tile_and_window_borders_leaves_no_seam(context):
    """A point light sitting on a tile border and a window border: the cross-faded correction
    is as smooth across the borders as the model's own output is elsewhere (also with a
    trained context level, whose receptive field spans the tile)."""
    t, h, w = 6, 64, 64
    aif = np.full((t, h, w, 3), 0.2, np.float32)
    coc = np.full((t, h, w), 3.0, np.float32)
    pieces = piece_weights(w, TINY["tile_size"], TINY["tile_overlap"])
    border = pieces[0][1] - 1  # last column of the first tile, inside the overlap
    aif[:, 31:34, border - 1:border + 2] = 40.0
    classical = aif.copy()
    model = tiny_model(random_head=True)
    if context:
        model = grow_context(model, context)
        torch.manual_seed(1)
        with torch.no_grad():
            model.context_out.weight.normal_(0, 0.1)
    pipe = RefinerPipeline(model)
    tiled = ClipRefiner(pipe, t, lambda i: (aif[i], coc[i], classical[i]))
    whole_cfg = dict(TINY, tile_size=64, tile_overlap=8, window=8, window_overlap=4, context_channels=context)
    whole_model = RefinerModel(**whole_cfg)
    whole_model.load_state_dict(pipe.model.state_dict())
    whole = ClipRefiner(RefinerPipeline(whole_model), t, lambda i: (aif[i], coc[i], classical[i]))
    window_border = windows_covering(2, t, 4, 2)[-1][0]  # a frame where two windows cross-fade
    for i in (window_border, window_border + 1):
        a, b = tiled.correction(i).numpy(), whole.correction(i).numpy()
        assert np.abs(a).max() > 1e-3
        # Jumps between neighbouring columns: at most those of the single-tile run anywhere.
        jump_tiled = np.abs(np.diff(a, axis=2)).max()
        jump_whole = np.abs(np.diff(b, axis=2)).max()
        assert jump_tiled <= 1.25 * jump_whole
        # At the border columns themselves, no jump stands out from the tiled run's own.
        at_border = np.abs(np.diff(a, axis=2))[..., border - 9:border + 9].max()
        assert at_border <= 1.25 * jump_whole
    # Consecutive frames at the window border do not jump more than inside a window.
    frames = [tiled.correction(i).numpy() for i in range(t)]
    steps = [np.abs(frames[i + 1] - frames[i]).max() for i in range(t - 1)]
    assert max(steps) <= 1.5 * min(steps) + 1e-6


def test_tone_space_is_invertible_for_hdr_and_negative_values():
    x = torch.tensor([-0.3, 0.0, 1e-4, 0.5, 1.0, 100.0, 6e4])
    assert torch.allclose(untone(tone(x)), x, rtol=1e-5, atol=1e-7)


def test_band_masks_partition_unity_and_are_finer_near_focus():
    t = band_thresholds(6, 0.5)
    widths = np.diff(t.numpy())
    assert widths[0] < widths[-1]  # finer near the focal plane
    coc = torch.linspace(-12, 12, 97).view(1, 1, 1, 97)
    masks = band_masks(coc, torch.tensor([12.0]), 6, 0.5)
    assert torch.allclose(masks.sum(dim=1), torch.ones(1, 1, 97), atol=1e-5)
    assert int(masks[0, :, 0, 48].argmax()) == 0  # in focus: the first band
    assert masks[0, -1, 0, 0] > 0.9 and masks[0, -1, 0, -1] > 0.9  # both ends: the last band


def test_batching_tiles_changes_nothing_but_the_speed():
    """Tiles go through the network 16 at a time; each is normalised on its own, so one tile
    per call gives the same pixels (to float rounding), and the correction scale scales the
    correction."""
    aif, coc, classical = clip(t=3, h=70, w=100)
    model = tiny_model(random_head=True)
    batched = RefinerPipeline(model, tiles_per_batch=16).window_correction(aif, coc, classical)
    single = RefinerPipeline(model, tiles_per_batch=1).window_correction(aif, coc, classical)
    assert batched.abs().max() > 1e-3
    torch.testing.assert_close(batched, single, rtol=1e-4, atol=1e-5)
    model.register_to_config(correction_scale=0.5)
    half = RefinerPipeline(model).window_correction(aif, coc, classical)
    torch.testing.assert_close(half, batched * 0.5, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="tiles_per_batch"):
        RefinerPipeline(model, tiles_per_batch=0)


# --- context levels (issue #12, fifth attempt): a wider receptive field grown from a trained model

def test_a_grown_context_level_returns_the_trained_model_output_bit_for_bit():
    """Growing a trained 2-level model by a zero-initialised context level changes nothing until
    it is trained: same pixels through tiles and windows, every old weight copied."""
    trained = tiny_model(random_head=True)
    grown = grow_context(trained, (24,))
    assert tuple(grown.config.context_channels) == (24,) and grown.multiple == 8
    assert not tuple(trained.config.context_channels) and trained.multiple == 4
    old = trained.state_dict()
    new = grown.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old)
    assert {k for k in new if k not in old} and all(k.startswith("context_") for k in new if k not in old)
    aif, coc, classical = clip()
    a = RefinerPipeline(trained)(aif, coc, classical).frames
    b = RefinerPipeline(grown)(aif, coc, classical).frames
    assert np.abs(a - classical).max() > 1e-3
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="already has context"):
        grow_context(grown, (24,))
    with pytest.raises(ValueError, match="norm_groups"):
        grow_context(trained, (10,))


def test_a_trained_context_level_changes_the_output_and_round_trips(tmp_path):
    grown = grow_context(tiny_model(random_head=True), (16, 24))
    aif, coc, classical = clip(t=3)
    before = RefinerPipeline(grown)(aif, coc, classical).frames
    with torch.no_grad():
        grown.context_out.weight.normal_(0, 0.1)
    after = RefinerPipeline(grown)(aif, coc, classical).frames
    assert np.abs(after - before).max() > 1e-4  # the new level reaches the output
    grown.save_pretrained(tmp_path / "m", safe_serialization=True)
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["context_channels"] == [16, 24]
    loaded = RefinerPipeline.from_pretrained(tmp_path / "m")
    assert list(loaded.config.context_channels) == [16, 24]
    assert np.array_equal(loaded(aif, coc, classical).frames, after)


def test_an_old_two_level_config_without_context_channels_still_loads_and_behaves(tmp_path):
    """Configs written before context levels existed (the shipped model's) have no
    ``context_channels`` key: they load as no context level, with the same output."""
    model = tiny_model(random_head=True)
    model.save_pretrained(tmp_path / "m", safe_serialization=True)
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    del config["context_channels"]
    path.write_text(json.dumps(config))
    loaded = RefinerPipeline.from_pretrained(tmp_path / "m")
    assert tuple(loaded.config.context_channels) == () and not len(loaded.model.context_resnets)
    assert not any(k.startswith("context_") for k in loaded.model.state_dict())
    aif, coc, classical = clip(t=3)
    assert np.array_equal(loaded(aif, coc, classical).frames, RefinerPipeline(model)(aif, coc, classical).frames)


def test_context_level_parameters_keep_temporal_layers_separable():
    grown = grow_context(tiny_model(), (24,))
    temporal = set(temporal_parameter_names(grown))
    assert any(n.startswith("context_temporal.") for n in temporal)
    assert all("temporal" in n for n in temporal)
    assert not any(n.startswith(("context_out", "context_resnets", "context_downsamplers", "context_upsamplers"))
                   for n in temporal)
    assert not temporal & set(decoder_parameter_names(grown))
