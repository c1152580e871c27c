"""Hugging Face depth estimators from a local folder (``--depth-model hf``).

Any checkpoint that transformers' ``AutoModelForDepthEstimation`` loads: Depth Anything V2
(the reference), DPT, and the others of that auto class.  Registered in
:data:`focuspull.stages.models.MODELS` as ``"hf"``.  Nothing is ever downloaded: the folder
must hold ``config.json`` and the weights (``model.safetensors``), and may hold the
``preprocessor_config.json`` of its image processor (read through ``AutoImageProcessor``).

Convention
----------
``HFDepthEstimator(checkpoint_dir, device)(rgb)``: ``rgb`` ``H x W x 3`` float32 scene-linear
-> ``H x W`` float32 *relative* disparity (near = large, arbitrary scale); the pipeline
normalises it once per clip (:func:`focuspull.stages.depth.sources.relative_range`).
``batch(list of rgb)`` does several frames per forward pass (``batch_size`` at a time).

1. Scene-linear light is encoded with the sRGB curve (clipped to 0..1): the models were
   trained on display-referred photographs.
2. Resized (bicubic, antialiased) to the processor's size -- keeping the aspect ratio when
   the processor does (Depth Anything: 518 px, multiples of 14) -- always to a multiple of
   the model's patch size, so any input size works; normalised with its mean/std.
3. The prediction is brought back to the frame size by a guided upsampling (a guided filter
   fitted at the prediction's size, its coefficients upsampled and applied to the
   full-size luminance: He, Sun & Tang 2013; "fast guided filter"), so depth edges land
   on the image's edges instead of a bilinear blur of them.
4. Models predicting metric depth (``depth_estimation_type == "metric"``, GLPN, ZoeDepth,
   DepthPro) are turned into disparity ``1 / depth``; the others already predict relative
   inverse depth.
On CUDA the model runs in float16 (bfloat16 where the GPU supports it); the guided
upsampling runs in float32.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from focuspull.errors import InputError, ModelError

#: Where the reference weights come from (said in every "no checkpoint" error).
WEIGHTS_HINT = ("download a transformers depth model yourself, e.g. Depth Anything V2 Small "
                "(Apache-2.0): `hf download depth-anything/Depth-Anything-V2-Small-hf --local-dir "
                "DIR`, then pass --depth-checkpoint DIR (focuspull never downloads)")
_METRIC_MODEL_TYPES = {"glpn", "zoedepth", "depth_pro"}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
GUIDE_RADIUS = 2  # px at the prediction's resolution
GUIDE_EPS = 1e-3  # regularisation of the guided filter, in (display-referred luminance)^2


def _check_folder(checkpoint_dir: str) -> str:
    if not checkpoint_dir:
        raise ModelError("the hf depth model needs a checkpoint folder", f"{WEIGHTS_HINT}")
    if not os.path.isdir(checkpoint_dir):
        raise ModelError(f"depth model folder {checkpoint_dir!r} does not exist", WEIGHTS_HINT)
    config = os.path.join(checkpoint_dir, "config.json")
    if not os.path.isfile(config):
        raise ModelError(f"{config} is missing: {checkpoint_dir!r} is not a transformers model folder",
                         WEIGHTS_HINT)
    try:
        with open(config, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {config}: {exc}", WEIGHTS_HINT) from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise ModelError(f"{config} has no model_type: not a transformers config", WEIGHTS_HINT)
    weights = [n for n in os.listdir(checkpoint_dir)
               if n.endswith(".safetensors") or n in ("pytorch_model.bin", "model.safetensors.index.json")]
    if not weights:
        raise ModelError(f"no weights in {checkpoint_dir!r} (expected model.safetensors)", WEIGHTS_HINT)
    return config


def _multiple(value: float, multiple: int) -> int:
    return max(multiple, int(round(value / multiple)) * multiple)


def model_input_size(height: int, width: int, target: tuple[int, int], keep_aspect_ratio: bool,
                     multiple: int) -> tuple[int, int]:
    """The network's input size for an ``height x width`` frame (the DPT processor's rule:
    with ``keep_aspect_ratio`` scale as little as possible to reach one side of
    ``target``), rounded to a multiple of ``multiple`` (>= one multiple)."""
    scale_h, scale_w = target[0] / height, target[1] / width
    if keep_aspect_ratio:
        if abs(1 - scale_w) < abs(1 - scale_h):
            scale_h = scale_w
        else:
            scale_w = scale_h
    return _multiple(scale_h * height, multiple), _multiple(scale_w * width, multiple)


def srgb_encode(linear):
    """Scene-linear (torch tensor) -> sRGB-encoded 0..1 (clipped)."""
    import torch  # noqa: PLC0415

    x = linear.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.clamp(min=1e-12) ** (1 / 2.4) - 0.055)


def guided_upsample(prediction, guide_full, radius: int = GUIDE_RADIUS, eps: float = GUIDE_EPS):
    """Fast guided upsampling.

    Args:
        prediction: ``(N, 1, h, w)`` float32 at the network's resolution.
        guide_full: ``(N, 1, H, W)`` float32 guide (display-referred luminance) at full size.
    Returns:
        ``(N, 1, H, W)``: ``a * guide + b`` with ``a, b`` the guided filter's local linear
        coefficients fitted at ``h x w`` and upsampled bilinearly.
    """
    import torch.nn.functional as F  # noqa: PLC0415

    size = prediction.shape[-2:]
    guide = F.interpolate(guide_full, size=size, mode="area") if guide_full.shape[-2:] != size else guide_full
    k = 2 * radius + 1

    def box(x):
        return F.avg_pool2d(F.pad(x, (radius,) * 4, mode="replicate"), k, stride=1)

    mean_i, mean_p = box(guide), box(prediction)
    cov_ip = box(guide * prediction) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    full = guide_full.shape[-2:]
    a = F.interpolate(box(a), size=full, mode="bilinear", align_corners=False)
    b = F.interpolate(box(b), size=full, mode="bilinear", align_corners=False)
    return a * guide_full + b


class HFDepthEstimator:
    """A transformers depth model as a focuspull depth estimator (see the module docstring).

    ``HFDepthEstimator(checkpoint_dir, device="cpu", batch_size=4)`` -- the factory
    signature of :data:`focuspull.stages.models.MODELS`.
    """

    def __init__(self, checkpoint_dir: str, device: str = "cpu", batch_size: int = 4) -> None:
        _check_folder(checkpoint_dir)
        try:
            import torch  # noqa: PLC0415
            import transformers  # noqa: PLC0415
            from transformers import AutoModelForDepthEstimation  # noqa: PLC0415
        except ImportError:
            raise ModelError("the hf depth model needs the transformers package",
                             "pip install 'focuspull[depth-models]'") from None
        transformers.utils.logging.disable_progress_bar()
        self.device = torch.device(device)
        self.batch_size = max(1, int(batch_size))
        dtype = torch.float32
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        try:
            model = AutoModelForDepthEstimation.from_pretrained(
                checkpoint_dir, local_files_only=True, trust_remote_code=False, dtype=dtype)
        except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
            raise ModelError(f"transformers cannot load a depth model from {checkpoint_dir!r}: "
                             f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                             "point --depth-checkpoint at a folder saved by save_pretrained of a "
                             f"depth-estimation model; {WEIGHTS_HINT}") from None
        self.model = model.to(self.device).eval()
        self.dtype = dtype
        config = model.config
        self.metric = (getattr(config, "depth_estimation_type", "relative") == "metric"
                       or config.model_type in _METRIC_MODEL_TYPES)
        self.patch_size = int(getattr(getattr(config, "backbone_config", None), "patch_size", 0)
                              or getattr(config, "patch_size", 0) or 14)
        self._read_processor(checkpoint_dir, config.model_type)

    def _read_processor(self, checkpoint_dir: str, model_type: str) -> None:
        target, keep, multiple = (518, 518), True, self.patch_size
        mean, std = _IMAGENET_MEAN, _IMAGENET_STD
        if model_type == "dpt":
            target, keep, mean, std = (384, 384), False, (0.5,) * 3, (0.5,) * 3
        if os.path.isfile(os.path.join(checkpoint_dir, "preprocessor_config.json")):
            from transformers import AutoImageProcessor  # noqa: PLC0415

            from transformers.utils import logging as hf_logging  # noqa: PLC0415

            # Only the processor's numbers are used (focuspull resizes on the device itself),
            # so its backend warning (no torchvision: PIL fallback) is noise here.
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()
            try:
                processor = AutoImageProcessor.from_pretrained(checkpoint_dir, local_files_only=True)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelError(f"cannot read the image processor in {checkpoint_dir!r}: {exc}",
                                 "fix or remove preprocessor_config.json") from None
            finally:
                hf_logging.set_verbosity(verbosity)
            size = getattr(processor, "size", None)
            height = getattr(size, "height", None) if not isinstance(size, dict) else size.get("height")
            width = getattr(size, "width", None) if not isinstance(size, dict) else size.get("width")
            if height and width:
                target = (int(height), int(width))
            keep = bool(getattr(processor, "keep_aspect_ratio", keep))
            multiple = int(getattr(processor, "ensure_multiple_of", None) or multiple)
            mean = tuple(getattr(processor, "image_mean", None) or mean)
            std = tuple(getattr(processor, "image_std", None) or std)
        # Whatever the processor says, the input must tile into whole patches.
        self.multiple = multiple * self.patch_size // math.gcd(multiple, self.patch_size)
        self.target, self.keep_aspect_ratio = target, keep
        self.mean, self.std = mean, std

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.batch([rgb])[0]

    def batch(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        """Relative disparity of several frames of one size; ``batch_size`` per forward pass."""
        import torch  # noqa: PLC0415

        frames = [np.asarray(r, dtype=np.float32) for r in rgbs]
        for rgb in frames:
            if rgb.ndim != 3 or rgb.shape[2] < 3:
                raise InputError(f"depth estimation needs H x W x 3 RGB, got shape {rgb.shape}",
                                 "pass the colour frame, not the depth or alpha")
            if rgb.shape[:2] != frames[0].shape[:2]:
                raise InputError(f"frames of one batch differ in size: {frames[0].shape[:2]} and "
                                 f"{rgb.shape[:2]}", "estimate the frames of one clip together")
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(frames), self.batch_size):
                chunk = np.stack([np.ascontiguousarray(f[..., :3]) for f in frames[start:start + self.batch_size]])
                out.extend(self._forward(torch.from_numpy(chunk).permute(0, 3, 1, 2).to(self.device)))
        return out

    def _forward(self, linear):
        display, disparity = self.predict(linear)
        guide = 0.2126 * display[:, 0:1] + 0.7152 * display[:, 1:2] + 0.0722 * display[:, 2:3]
        disparity = guided_upsample(disparity, guide.float())
        return [d[0].cpu().numpy().astype(np.float32) for d in disparity]

    def predict(self, linear):
        """``(N, 3, H, W)`` scene-linear tensor -> ``(display-referred input (N, 3, H, W),
        disparity at the network's resolution (N, 1, h, w) float32, near = large)``."""
        import torch  # noqa: PLC0415
        import torch.nn.functional as F  # noqa: PLC0415

        height, width = linear.shape[-2:]
        display = srgb_encode(torch.nan_to_num(linear.float(), nan=0.0, posinf=1.0, neginf=0.0))
        size = model_input_size(height, width, self.target, self.keep_aspect_ratio, self.multiple)
        pixels = F.interpolate(display, size=size, mode="bicubic", align_corners=False,
                               antialias=True).clamp(0.0, 1.0)
        mean = torch.tensor(self.mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, 3, 1, 1)
        pixels = ((pixels - mean) / std).to(self.dtype)
        with torch.inference_mode():
            predicted = self.model(pixel_values=pixels).predicted_depth
        if predicted.ndim == 3:
            predicted = predicted[:, None]
        predicted = predicted.float()
        if self.metric:
            predicted = 1.0 / predicted.clamp(min=1e-6)
        return display, predicted
