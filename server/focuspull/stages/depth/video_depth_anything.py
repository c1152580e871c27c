"""Video Depth Anything from its published checkpoint (``--depth-model vda``).

Video Depth Anything (Chen et al. 2025, ByteDance; github.com/DepthAnything/Video-Depth-Anything)
is Depth Anything V2 with temporal attention in its DPT head: a DINOv2 ViT encoder
(``pretrained.*``) and a DPT head (``head.*``) whose two deepest reassembled feature maps and
two deepest fusion outputs each pass through a temporal transformer (``head.motion_modules.0-3``)
that attends across the frames of a window.  This module is focuspull's own implementation
of that architecture; its parameter names follow the published state dict exactly, so the
published ``video_depth_anything_vits.pth`` loads with ``strict=True``.

Checkpoint folder (``--depth-checkpoint DIR``)
----------------------------------------------
One weights file: ``video_depth_anything_vit{s,b,l}.pth`` as published (any ``*.pth`` or
``*.safetensors`` holding that state dict works), and optionally ``config.json`` with
overrides (all keys optional): ``num_heads`` (encoder heads; default ``embed_dim // 64``),
``layers`` (the four encoder blocks fed to the head; default the published
``[2, 5, 8, 11]`` / ``[4, 11, 17, 23]``), ``temporal_heads`` (8), ``norm_groups`` (32),
``input_size`` (518: the short side the frames are resized to), ``window`` (32 frames),
``overlap`` (10 frames).  Everything else (widths, depth, window limit) is read from the
tensors' shapes.  Checkpoints whose file name starts with ``metric_`` predict metric depth
and are turned into disparity ``1 / depth``.  Nothing is ever downloaded.

Windows (a documented simplification of the published inference)
-----------------------------------------------------------------
The model sees ``window`` frames at once (its temporal position table holds 32).  The
published script chains windows with key frames taken from the previous window's input;
focuspull runs windows of ``window`` frames starting every ``window - overlap`` clip
indices, each on the clip's own frames (a short clip, or the tail, is padded by repeating
its last frame), then fits each window to the already-assembled result by a least-squares
scale and shift over the ``overlap`` shared frames and cross-fades linearly across them.
Windows are placed on **clip indices**, and the whole clip is always estimated together
(:meth:`VideoDepthAnythingEstimator.clip`), so every frame's result depends on the whole
clip only, never on which chunk is rendered.

Per frame: scene-linear -> sRGB-encoded 0..1, resized (bicubic, antialiased) so the short
side is ``input_size`` and both sides are multiples of 14 (very wide frames are shrunk as the
published script does), ImageNet mean/std; the prediction (relative disparity, near =
large) comes back to the frame size by the guided upsampling of
:mod:`focuspull.stages.depth.hf_estimator`.  On CUDA the network runs under autocast in
bfloat16 (float16 where bfloat16 is not supported), the last convolution in float32; on
the CPU in float32.

Licences: Video-Depth-Anything-Small is Apache-2.0; Base and Large are CC-BY-NC-4.0
(non-commercial).  See docs/depth-and-focus.md.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from focuspull.errors import InputError, ModelError

#: Where the weights come from (said in every "no checkpoint" error).
WEIGHTS_HINT = ("download Video Depth Anything Small (Apache-2.0) yourself, e.g. `hf download "
                "depth-anything/Video-Depth-Anything-Small video_depth_anything_vits.pth --local-dir DIR`, "
                "then pass --depth-checkpoint DIR (focuspull never downloads)")
PATCH = 14
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_PUBLISHED_LAYERS = {12: [2, 5, 8, 11], 24: [4, 11, 17, 23], 40: [9, 19, 29, 39]}
_CONFIG_KEYS = {"num_heads", "layers", "temporal_heads", "norm_groups", "input_size", "window", "overlap"}


def _torch():
    try:
        import torch  # noqa: PLC0415
    except ImportError:
        raise ModelError("the vda depth model needs torch", "pip install 'focuspull[depth-models]'") from None
    return torch


# --------------------------------------------------------------------------- the network
def build_network(cfg: dict):
    """The module tree (``pretrained`` + ``head``) for a config dict (see :func:`infer_config`)."""
    torch = _torch()
    nn, F = torch.nn, torch.nn.functional

    class Mlp(nn.Module):
        def __init__(self, dim, hidden):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(F.gelu(self.fc1(x)))

    class SelfAttention(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.heads = heads
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)

        def forward(self, x):
            n, t, c = x.shape
            q, k, v = self.qkv(x).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
            y = F.scaled_dot_product_attention(q, k, v)
            return self.proj(y.transpose(1, 2).reshape(n, t, c))

    class Scale(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.gamma = nn.Parameter(torch.ones(dim))

        def forward(self, x):
            return x * self.gamma

    class Block(nn.Module):
        def __init__(self, dim, heads):
            super().__init__()
            self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
            self.attn, self.mlp = SelfAttention(dim, heads), Mlp(dim, 4 * dim)
            self.ls1, self.ls2 = Scale(dim), Scale(dim)

        def forward(self, x):
            x = x + self.ls1(self.attn(self.norm1(x)))
            return x + self.ls2(self.mlp(self.norm2(x)))

    class PatchEmbed(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.proj = nn.Conv2d(3, dim, PATCH, stride=PATCH)

        def forward(self, x):
            return self.proj(x).flatten(2).transpose(1, 2)

    class Encoder(nn.Module):
        """DINOv2 ViT (no registers, layer scale, LayerNorm eps 1e-6), 518 px position table."""

        def __init__(self, dim, depth, heads, grid):
            super().__init__()
            self.grid = grid
            self.patch_embed = PatchEmbed(dim)
            self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, dim))
            self.mask_token = nn.Parameter(torch.zeros(1, dim))  # unused at inference; in the file
            self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
            self.norm = nn.LayerNorm(dim, eps=1e-6)

        def positions(self, rows, cols, dtype):
            table = self.pos_embed.float()
            if rows == cols == self.grid:
                return table.to(dtype)
            grid = table[:, 1:].reshape(1, self.grid, self.grid, -1).permute(0, 3, 1, 2)
            # DINOv2's rule: scale factors from the patch counts plus a 0.1 offset, bicubic.
            grid = F.interpolate(grid, scale_factor=((rows + 0.1) / self.grid, (cols + 0.1) / self.grid),
                                 mode="bicubic", antialias=False)
            grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
            return torch.cat([table[:, :1], grid], dim=1).to(dtype)

        def forward(self, x, layers):
            rows, cols = x.shape[-2] // PATCH, x.shape[-1] // PATCH
            tokens = self.patch_embed(x)
            tokens = torch.cat([self.cls_token.expand(len(tokens), -1, -1).to(tokens.dtype), tokens], dim=1)
            tokens = tokens + self.positions(rows, cols, tokens.dtype)
            taken = []
            for i, block in enumerate(self.blocks):
                tokens = block(tokens)
                if i in layers:
                    taken.extend([self.norm(tokens)[:, 1:]] * layers.count(i))
            return taken

    class ResidualUnit(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(ch, ch, 3, padding=1), nn.Conv2d(ch, ch, 3, padding=1)

        def forward(self, x):
            return x + self.conv2(F.relu(self.conv1(F.relu(x))))

    class Fusion(nn.Module):
        def __init__(self, ch):
            super().__init__()
            self.resConfUnit1, self.resConfUnit2 = ResidualUnit(ch), ResidualUnit(ch)
            self.out_conv = nn.Conv2d(ch, ch, 1)

        def forward(self, x, skip=None, size=None):
            if skip is not None:
                x = x + self.resConfUnit1(skip)
            x = self.resConfUnit2(x)
            if size is None:
                x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
            else:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
            return self.out_conv(x)

    class TemporalAttention(nn.Module):
        def __init__(self, dim, heads, max_len):
            super().__init__()
            self.heads = heads
            self.to_q = nn.Linear(dim, dim, bias=False)
            self.to_k = nn.Linear(dim, dim, bias=False)
            self.to_v = nn.Linear(dim, dim, bias=False)
            self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
            self.pos_encoder = nn.Module()
            position = torch.arange(max_len, dtype=torch.float32)[:, None]
            freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
            table = torch.zeros(1, max_len, dim)
            table[0, :, 0::2] = torch.sin(position * freq)
            table[0, :, 1::2] = torch.cos(position * freq)
            self.pos_encoder.register_buffer("pe", table)

        def forward(self, x):  # x: (sequences, frames, channels)
            n, t, c = x.shape
            x = x + self.pos_encoder.pe[:, :t].to(x.dtype)

            def split(y):
                return y.view(n, t, self.heads, c // self.heads).transpose(1, 2)

            y = F.scaled_dot_product_attention(split(self.to_q(x)), split(self.to_k(x)), split(self.to_v(x)))
            return self.to_out[0](y.transpose(1, 2).reshape(n, t, c))

    class GEGLU(nn.Module):
        def __init__(self, dim, hidden):
            super().__init__()
            self.proj = nn.Linear(dim, 2 * hidden)

        def forward(self, x):
            value, gate = self.proj(x).chunk(2, dim=-1)
            return value * F.gelu(gate)

    class TemporalBlock(nn.Module):
        def __init__(self, dim, heads, max_len):
            super().__init__()
            self.attention_blocks = nn.ModuleList(TemporalAttention(dim, heads, max_len) for _ in range(2))
            self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(2))
            self.ff = nn.Module()
            self.ff.net = nn.ModuleList([GEGLU(dim, 4 * dim), nn.Dropout(0.0), nn.Linear(4 * dim, dim)])
            self.ff_norm = nn.LayerNorm(dim)

        def forward(self, x):
            for attention, norm in zip(self.attention_blocks, self.norms):
                x = x + attention(norm(x))
            y = self.ff_norm(x)
            for layer in self.ff.net:
                y = layer(y)
            return x + y

    class TemporalTransformer(nn.Module):
        def __init__(self, ch, heads, groups, max_len):
            super().__init__()
            self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
            self.proj_in, self.proj_out = nn.Linear(ch, ch), nn.Linear(ch, ch)
            self.transformer_blocks = nn.ModuleList([TemporalBlock(ch, heads, max_len)])

        def forward(self, x, frames):  # x: (batch * frames, ch, h, w)
            bt, ch, h, w = x.shape
            y = self.proj_in(self.norm(x).permute(0, 2, 3, 1).reshape(bt, h * w, ch))
            # attend along time: one sequence per (clip, pixel)
            y = y.view(bt // frames, frames, h * w, ch).transpose(1, 2).reshape(-1, frames, ch)
            for block in self.transformer_blocks:
                y = block(y)
            y = y.view(bt // frames, h * w, frames, ch).transpose(1, 2).reshape(bt, h * w, ch)
            return x + self.proj_out(y).view(bt, h, w, ch).permute(0, 3, 1, 2)

    class MotionModule(nn.Module):
        def __init__(self, ch, heads, groups, max_len):
            super().__init__()
            self.temporal_transformer = TemporalTransformer(ch, heads, groups, max_len)

        def forward(self, x, frames):
            return self.temporal_transformer(x, frames)

    class Head(nn.Module):
        def __init__(self, dim, features, outs, heads, groups, max_len):
            super().__init__()
            self.projects = nn.ModuleList(nn.Conv2d(dim, o, 1) for o in outs)
            self.resize_layers = nn.ModuleList([
                nn.ConvTranspose2d(outs[0], outs[0], 4, stride=4), nn.ConvTranspose2d(outs[1], outs[1], 2, stride=2),
                nn.Identity(), nn.Conv2d(outs[3], outs[3], 3, stride=2, padding=1)])
            s = self.scratch = nn.Module()
            for i, o in enumerate(outs, 1):
                setattr(s, f"layer{i}_rn", nn.Conv2d(o, features, 3, padding=1, bias=False))
            for i in range(1, 5):
                setattr(s, f"refinenet{i}", Fusion(features))
            s.output_conv1 = nn.Conv2d(features, features // 2, 3, padding=1)
            s.output_conv2 = nn.Sequential(nn.Conv2d(features // 2, 32, 3, padding=1), nn.ReLU(),
                                           nn.Conv2d(32, 1, 1), nn.ReLU(), nn.Identity())
            self.motion_modules = nn.ModuleList(
                MotionModule(c, heads, groups, max_len) for c in (outs[2], outs[3], features, features))

        def forward(self, feats, rows, cols, frames):
            maps = []
            for i, tokens in enumerate(feats):
                x = tokens.transpose(1, 2).reshape(len(tokens), -1, rows, cols)
                maps.append(self.resize_layers[i](self.projects[i](x)))
            l1, l2, l3, l4 = maps
            l3 = self.motion_modules[0](l3, frames)
            l4 = self.motion_modules[1](l4, frames)
            s = self.scratch
            r1, r2, r3, r4 = s.layer1_rn(l1), s.layer2_rn(l2), s.layer3_rn(l3), s.layer4_rn(l4)
            p = self.motion_modules[2](s.refinenet4(r4, size=r3.shape[2:]), frames)
            p = self.motion_modules[3](s.refinenet3(p, r3, size=r2.shape[2:]), frames)
            p = s.refinenet2(p, r2, size=r1.shape[2:])
            p = s.output_conv1(s.refinenet1(p, r1))
            p = F.interpolate(p, (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=True)
            with torch.autocast(device_type=p.device.type, enabled=False):
                return s.output_conv2(p.float())

    class VideoDepthAnything(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.layers = list(c["layers"])
            self.pretrained = Encoder(c["embed_dim"], c["depth"], c["num_heads"], c["grid"])
            self.head = Head(c["embed_dim"], c["features"], c["out_channels"], c["temporal_heads"],
                             c["norm_groups"], c["max_frames"])

        def forward(self, x):
            """``(B, T, 3, H, W)`` (H, W multiples of 14) -> ``(B, T, H, W)`` relative disparity."""
            b, t, _, h, w = x.shape
            feats = self.pretrained(x.flatten(0, 1), self.layers)
            out = self.head(feats, h // PATCH, w // PATCH, t)
            out = F.relu(F.interpolate(out, size=(h, w), mode="bilinear", align_corners=True))
            return out[:, 0].unflatten(0, (b, t))

    return VideoDepthAnything(cfg)


def infer_config(state: dict, overrides: dict | None = None) -> dict:
    """The architecture of a state dict in the published layout (shapes), plus ``overrides``."""
    def shape(key):
        if key not in state:
            raise KeyError(key)
        return tuple(state[key].shape)

    embed_dim = shape("pretrained.cls_token")[-1]
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("pretrained.blocks."))
    grid = math.isqrt(shape("pretrained.pos_embed")[1] - 1)
    cfg = {
        "embed_dim": embed_dim, "depth": depth, "grid": grid,
        "num_heads": max(1, embed_dim // 64),
        "layers": _PUBLISHED_LAYERS.get(depth, [round((k + 1) * depth / 4) - 1 for k in range(4)]),
        "features": shape("head.scratch.layer1_rn.weight")[0],
        "out_channels": [shape(f"head.projects.{i}.weight")[0] for i in range(4)],
        "temporal_heads": 8, "norm_groups": 32,
        "max_frames": shape("head.motion_modules.0.temporal_transformer.transformer_blocks.0."
                            "attention_blocks.0.pos_encoder.pe")[1],
        "input_size": 518, "window": 32, "overlap": 10,
    }
    cfg.update(overrides or {})
    return cfg


# --------------------------------------------------------------------------- windows
def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start clip indices of the windows covering ``length`` frames (step ``window - overlap``)."""
    step = window - overlap
    starts = [0]
    while starts[-1] + window < length:
        starts.append(starts[-1] + step)
    return starts


def assemble_windows(predictions: list[np.ndarray], starts: list[int], length: int, overlap: int) -> np.ndarray:
    """Join per-window predictions ``(window, h, w)`` into ``(length, h, w)``.

    Each later window is fitted to the assembled result by least-squares scale and shift over
    the ``overlap`` frames they share, then cross-faded linearly (weight of the new window
    rising from ``1/(overlap+1)`` to ``overlap/(overlap+1)``) across them; negative values are
    clipped to 0 (disparity)."""
    window = predictions[0].shape[0]
    out = np.zeros((starts[-1] + window,) + predictions[0].shape[1:], np.float64)
    out[:window] = predictions[0]
    for start, pred in zip(starts[1:], predictions[1:]):
        pred = pred.astype(np.float64)
        shared_old, shared_new = out[start:start + overlap].ravel(), pred[:overlap].ravel()
        design = np.stack([shared_new, np.ones_like(shared_new)], axis=1)
        (scale, shift), *_ = np.linalg.lstsq(design, shared_old, rcond=None)
        pred = np.maximum(pred * scale + shift, 0.0)
        fade = (np.arange(1, overlap + 1) / (overlap + 1))[:, None, None]
        out[start:start + overlap] = (1 - fade) * out[start:start + overlap] + fade * pred[:overlap]
        out[start + overlap:start + window] = pred[overlap:]
    return out[:length].astype(np.float32)


# --------------------------------------------------------------------------- the estimator
def _find_weights(checkpoint_dir: str) -> str:
    if not checkpoint_dir:
        raise ModelError("the vda depth model needs a checkpoint folder (--depth-checkpoint DIR)", WEIGHTS_HINT)
    if not os.path.isdir(checkpoint_dir):
        raise ModelError(f"depth model folder {checkpoint_dir!r} does not exist", WEIGHTS_HINT)
    files = sorted(n for n in os.listdir(checkpoint_dir) if n.endswith((".pth", ".safetensors")))
    if not files:
        raise ModelError(f"no Video Depth Anything weights in {checkpoint_dir!r} "
                         "(expected video_depth_anything_vits.pth)", WEIGHTS_HINT)
    if len(files) > 1:
        raise ModelError(f"{checkpoint_dir!r} holds several weight files ({', '.join(files)})",
                         "keep one checkpoint per folder")
    return os.path.join(checkpoint_dir, files[0])


def _read_overrides(checkpoint_dir: str) -> dict:
    path = os.path.join(checkpoint_dir, "config.json")
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", "fix or remove config.json") from None
    if not isinstance(data, dict) or set(data) - _CONFIG_KEYS:
        raise ModelError(f"{path}: unknown keys {sorted(set(data) - _CONFIG_KEYS) if isinstance(data, dict) else data}",
                         f"config.json may hold only {', '.join(sorted(_CONFIG_KEYS))}")
    return data


class VideoDepthAnythingEstimator:
    """Video Depth Anything as a focuspull depth estimator (see the module docstring).

    ``VideoDepthAnythingEstimator(checkpoint_dir, device="cpu")`` -- the factory signature of
    :data:`focuspull.stages.models.MODELS`.  :meth:`clip` estimates a whole clip (the pipeline
    uses it because ``temporal`` is true); calling it on one frame estimates that frame alone.
    """

    temporal = True  # the pipeline hands it the clip's frames together

    def __init__(self, checkpoint_dir: str, device: str = "cpu") -> None:
        weights = _find_weights(checkpoint_dir)
        overrides = _read_overrides(checkpoint_dir)
        torch = _torch()
        try:
            if weights.endswith(".safetensors"):
                from safetensors.torch import load_file  # noqa: PLC0415

                state = load_file(weights)
            else:
                state = torch.load(weights, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
                state = state["state_dict"]
            cfg = infer_config(state, overrides)
            model = build_network(cfg)
            model.load_state_dict(state, strict=True)
        except Exception as exc:  # noqa: BLE001 - any unreadable or foreign file is the same user error
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelError(f"{weights!r} is not a Video Depth Anything checkpoint: {text[:300]}",
                             WEIGHTS_HINT) from None
        self.cfg = cfg
        self.window, self.overlap = int(cfg["window"]), int(cfg["overlap"])
        if not 0 < self.window <= cfg["max_frames"] or not 0 < self.overlap < self.window:
            raise ModelError(f"window {self.window} / overlap {self.overlap} do not fit the model "
                             f"(at most {cfg['max_frames']} frames)", "fix window and overlap in config.json")
        self.metric = os.path.basename(weights).startswith("metric_")
        self.device = torch.device(device)
        self.autocast_dtype = None
        if self.device.type == "cuda":
            self.autocast_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.model = model.to(self.device).eval()
        self.batch_size = self.window

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Network size: short side ``input_size`` (smaller for frames wider than 16:9, as
        published), both sides multiples of 14 (at least 14)."""
        size = int(self.cfg["input_size"])
        ratio = max(height, width) / min(height, width)
        if ratio > 1.78:
            size = max(PATCH, round(int(size * 1.777 / ratio) / PATCH) * PATCH)
        scale = size / min(height, width)

        def fit(x):  # the published "lower bound" rule: nearest multiple, not below x
            y = round(x / PATCH) * PATCH
            return max(PATCH, y if y >= x - 1e-6 else math.ceil(x / PATCH) * PATCH)

        return fit(height * scale), fit(width * scale)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.clip([rgb])[0]

    def clip(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        """Relative disparity (near = large) of every frame of one clip, in clip order."""
        torch = _torch()
        import torch.nn.functional as F  # noqa: PLC0415

        from focuspull.stages.depth.hf_estimator import guided_upsample, srgb_encode  # noqa: PLC0415

        frames = [np.asarray(r, dtype=np.float32) for r in rgbs]
        if not frames:
            return []
        for rgb in frames:
            if rgb.ndim != 3 or rgb.shape[2] < 3:
                raise InputError(f"depth estimation needs H x W x 3 RGB, got shape {rgb.shape}",
                                 "pass the colour frame, not the depth or alpha")
            if rgb.shape[:2] != frames[0].shape[:2]:
                raise InputError(f"frames of one clip differ in size: {frames[0].shape[:2]} and {rgb.shape[:2]}",
                                 "give every frame of the clip the same size")
        height, width = frames[0].shape[:2]
        size = self.input_size(height, width)
        mean = torch.tensor(_IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

        def prepare(rgb):
            linear = torch.from_numpy(np.ascontiguousarray(rgb[..., :3])).permute(2, 0, 1)[None].to(self.device)
            display = srgb_encode(torch.nan_to_num(linear, nan=0.0, posinf=1.0, neginf=0.0))
            pixels = F.interpolate(display, size=size, mode="bicubic", align_corners=False, antialias=True)
            return display, (pixels.clamp(0.0, 1.0) - mean) / std

        starts = window_starts(len(frames), self.window, self.overlap)
        predictions = []
        with torch.inference_mode():
            for start in starts:
                idx = [min(i, len(frames) - 1) for i in range(start, start + self.window)]
                x = torch.cat([prepare(frames[i])[1] for i in idx])[None]
                with torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype,
                                    enabled=self.autocast_dtype is not None):
                    pred = self.model(x)[0].float()
                if self.metric:
                    pred = 1.0 / pred.clamp(min=1e-6)
                predictions.append(pred.cpu().numpy())
            joined = assemble_windows(predictions, starts, len(frames), self.overlap)
            out = []
            for rgb, disparity in zip(frames, joined):
                display, _ = prepare(rgb)
                guide = 0.2126 * display[:, 0:1] + 0.7152 * display[:, 1:2] + 0.0722 * display[:, 2:3]
                d = torch.from_numpy(disparity)[None, None].to(self.device)
                out.append(guided_upsample(d, guide.float())[0, 0].cpu().numpy().astype(np.float32))
        return out
