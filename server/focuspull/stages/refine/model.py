"""The refiner network: a small spatio-temporal UNet of diffusers blocks, used in one step.

Convention: input ``(B*T, C, H, W)`` -- ``T`` consecutive frames of ``B`` clips, frames
contiguous -- with ``H`` and ``W`` multiples of ``2 ** len(block_channels)``; output
``(B*T, 3, H, W)``, a correction in tone space (see :mod:`.conditioning`).

Spatial path: ``ResnetBlock2D`` / ``Downsample2D`` / ``Upsample2D`` from diffusers, a skip
per level; the embedding of the fixed timestep and of the strength K (sinusoidal Fourier
features -> MLP, diffusers ``Timesteps`` + ``TimestepEmbedding``) enters every resnet.
Temporal path: a diffusers ``TemporalConvLayer`` (3-tap convolutions across frames,
zero-initialised last layer = identity) after each level; every such parameter name
contains ``temporal`` so training stage 2 can train them alone.  The output convolution
is zero-initialised: an untrained model predicts no correction, so the refiner returns the
classical render exactly.

Context levels (``context_channels``, empty by default): more levels below the bottleneck,
each a ``Downsample2D`` + ``ResnetBlock2D`` + ``TemporalConvLayer``, brought back up by
``Upsample2D`` convolutions and added to the bottleneck through a zero-initialised 1x1
convolution (``context_out``) before the middle resnet.  They widen the receptive field
(one level of 128 channels: 8 px cells on a 64 px tile) and, being zero at
initialisation, a model grown from a trained one (:func:`grow_context`) gives exactly its
output until fine-tuned.
"""
from __future__ import annotations

import torch
from torch import nn

from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.resnet import Downsample2D, ResnetBlock2D, TemporalConvLayer, Upsample2D


class RefinerModel(ModelMixin, ConfigMixin):
    """One-step MPI-conditioned video refiner (see the module docstring for shapes).

    Args:
        num_bands: MPI band masks in the input.
        band_exponent: ``d_f`` of the band thresholds ``(i/N)^(1/d_f)``.
        block_channels: channels per UNet level (one downsampling between levels).
        norm_groups: GroupNorm groups (must divide every entry of ``block_channels``).
        embed_dim: width of the timestep + strength embedding.
        fixed_timestep: the one diffusion timestep the model is run (and trained) at.
        correction_scale: the predicted correction is multiplied by this (1 in training; a
            shipped model may set a smaller value chosen on its validation split, which
            trades some of the gain for fewer overshoots).
    """

    @register_to_config
    def __init__(self, num_bands: int = 6, band_exponent: float = 0.5,
                 block_channels: tuple = (32, 64), norm_groups: int = 8, embed_dim: int = 64,
                 fixed_timestep: int = 999, tile_size: int = 64, tile_overlap: int = 16,
                 window: int = 8, window_overlap: int = 4, correction_scale: float = 1.0,
                 context_channels: tuple = ()):
        super().__init__()
        in_channels = 7 + num_bands
        chans = list(block_channels)
        self.time_proj = Timesteps(embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(embed_dim, embed_dim)
        self.strength_proj = Timesteps(embed_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.strength_embedding = TimestepEmbedding(embed_dim, embed_dim)
        self.conv_in = nn.Conv2d(in_channels, chans[0], 3, padding=1)

        def res(cin, cout):
            return ResnetBlock2D(in_channels=cin, out_channels=cout, temb_channels=embed_dim, groups=norm_groups)

        self.down_resnets = nn.ModuleList()
        self.down_temporal = nn.ModuleList()
        self.downsamplers = nn.ModuleList()
        prev = chans[0]
        for c in chans:
            self.down_resnets.append(res(prev, c))
            self.down_temporal.append(TemporalConvLayer(c, c, norm_num_groups=norm_groups))
            self.downsamplers.append(Downsample2D(c, use_conv=True, out_channels=c, padding=1, name="op"))
            prev = c
        self.context_downsamplers = nn.ModuleList()
        self.context_resnets = nn.ModuleList()
        self.context_temporal = nn.ModuleList()
        self.context_upsamplers = nn.ModuleList()
        lower = prev
        for c in context_channels:
            self.context_downsamplers.append(Downsample2D(lower, use_conv=True, out_channels=lower, padding=1, name="op"))
            self.context_resnets.append(res(lower, c))
            self.context_temporal.append(TemporalConvLayer(c, c, norm_num_groups=norm_groups))
            # Built bottom-up in forward order below: level i's upsampler returns to level i-1's width.
            self.context_upsamplers.insert(0, Upsample2D(c, use_conv=True, out_channels=lower))
            lower = c
        if context_channels:
            self.context_out = nn.Conv2d(prev, prev, 1)
            nn.init.zeros_(self.context_out.weight)
            nn.init.zeros_(self.context_out.bias)
        self.mid_resnet = res(prev, prev)
        self.mid_temporal = TemporalConvLayer(prev, prev, norm_num_groups=norm_groups)
        self.up_samplers = nn.ModuleList()
        self.up_resnets = nn.ModuleList()
        for c in reversed(chans):
            self.up_samplers.append(Upsample2D(prev, use_conv=True, out_channels=prev))
            self.up_resnets.append(res(prev + c, c))
            prev = c
        self.conv_norm_out = nn.GroupNorm(norm_groups, prev)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(prev, 3, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    @property
    def multiple(self) -> int:
        """Height and width of the input must be multiples of this."""
        return 2 ** (len(self.config.block_channels) + len(self.config.context_channels))

    def forward(self, sample: torch.Tensor, strength_px: torch.Tensor, num_frames: int) -> torch.Tensor:
        """``sample (B*T, 7+bands, H, W)``, ``strength_px (B*T,)`` -> correction ``(B*T, 3, H, W)``."""
        n, _, h, w = sample.shape
        if n % num_frames or h % self.multiple or w % self.multiple:
            raise ValueError(f"sample {tuple(sample.shape)}: batch must be a multiple of num_frames="
                             f"{num_frames} and H, W multiples of {self.multiple}")
        dtype = sample.dtype
        t = torch.full((n,), float(self.config.fixed_timestep), device=sample.device)
        temb = self.time_embedding(self.time_proj(t).to(dtype))
        # log2 so 1 px and 64 px are as far apart as 64 px and 4096 px would be linearly.
        s = torch.log2(strength_px.float().clamp_min(0.25) * 4.0) * 100.0
        temb = temb + self.strength_embedding(self.strength_proj(s).to(dtype))

        x = self.conv_in(sample)
        skips = []
        for resnet, temporal, down in zip(self.down_resnets, self.down_temporal, self.downsamplers):
            x = resnet(x, temb)
            x = temporal(x, num_frames=num_frames)
            skips.append(x)
            x = down(x)
        if len(self.context_resnets):
            c = x
            for down, resnet, temporal in zip(self.context_downsamplers, self.context_resnets, self.context_temporal):
                c = temporal(resnet(down(c), temb), num_frames=num_frames)
            for up in self.context_upsamplers:
                c = up(c)
            x = x + self.context_out(c)
        x = self.mid_resnet(x, temb)
        x = self.mid_temporal(x, num_frames=num_frames)
        for up, resnet in zip(self.up_samplers, self.up_resnets):
            x = up(x)
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
        out = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        scale = float(self.config.correction_scale)
        return out if scale == 1.0 else out * scale


def grow_context(model: RefinerModel, context_channels: tuple) -> RefinerModel:
    """A copy of ``model`` with context levels ``context_channels`` added (see the module
    docstring): every existing weight is copied, the new levels are freshly initialised and
    their output projection is zero, so the grown model's output equals ``model``'s bit for
    bit until it is trained.  ``model`` must have no context levels yet."""
    if tuple(model.config.context_channels):
        raise ValueError(f"model already has context levels {tuple(model.config.context_channels)}")
    if not context_channels or any(int(c) % model.config.norm_groups for c in context_channels):
        raise ValueError(f"context_channels {tuple(context_channels)}: give one or more widths, "
                         f"each a multiple of norm_groups={model.config.norm_groups}")
    config = {k: v for k, v in dict(model.config).items() if not k.startswith("_")}
    config["context_channels"] = tuple(int(c) for c in context_channels)
    grown = RefinerModel(**config)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("context_") for k in missing):
        raise ValueError(f"weights do not match: missing {missing}, unexpected {unexpected}")
    return grown.to(next(model.parameters()).device)


def temporal_parameter_names(model: RefinerModel) -> list[str]:
    """Names of the temporal layers' parameters (training stage 2 trains only these)."""
    return [n for n, _ in model.named_parameters() if "temporal" in n]


def decoder_parameter_names(model: RefinerModel) -> list[str]:
    """Decoder / output parameters (training stage 3): the up path and the output head."""
    return [n for n, _ in model.named_parameters() if n.startswith(("up_", "conv_norm_out", "conv_out"))]
