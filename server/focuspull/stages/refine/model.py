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
                 window: int = 8, window_overlap: int = 4, correction_scale: float = 1.0):
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
        return 2 ** len(self.config.block_channels)

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
        x = self.mid_resnet(x, temb)
        x = self.mid_temporal(x, num_frames=num_frames)
        for up, resnet in zip(self.up_samplers, self.up_resnets):
            x = up(x)
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)
        out = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        scale = float(self.config.correction_scale)
        return out if scale == 1.0 else out * scale


def temporal_parameter_names(model: RefinerModel) -> list[str]:
    """Names of the temporal layers' parameters (training stage 2 trains only these)."""
    return [n for n, _ in model.named_parameters() if "temporal" in n]


def decoder_parameter_names(model: RefinerModel) -> list[str]:
    """Decoder / output parameters (training stage 3): the up path and the output head."""
    return [n for n, _ in model.named_parameters() if n.startswith(("up_", "conv_norm_out", "conv_out"))]
