"""The three training stages, checkpoints, resume, validation and loss logging.

Stages (as the seed paper's progressive training):

1. the whole model on 4-frame clips, L1 in tone space;
2. the temporal layers only (parameter names containing ``temporal``) on 8-frame windows
   with perturbed depth (scale/shift jitter, noise, edge dilation/erosion), so estimated
   depth does not break the refiner;
3. the decoder (up path + output head) only, L1 + Sobel-gradient L1 for edge and rim detail.

Layout of ``out``: ``stage<N>/checkpoint.pt`` (model, optimiser, step; resumable),
``stage<N>/log.jsonl`` (one line per logged step: train loss, validation loss when measured),
and the exported model (``config.json`` + ``diffusion_pytorch_model.safetensors``) in ``out``
itself after every stage.  A stage starts from the exported model of the previous stage
in ``out`` (or a fresh zero-initialised model for stage 1).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from focuspull.errors import InputError
from focuspull.stages.refine.conditioning import frame_strength, model_inputs, tone, untone
from focuspull.stages.refine.model import (RefinerModel, decoder_parameter_names, grow_context,
                                           temporal_parameter_names)
from focuspull.stages.refine.training.scenes import VALIDATION_SEED0, Clip, make_clip


@dataclass(frozen=True)
class StageSpec:
    frames: int
    perturb: bool
    trains: str  # "all" | "temporal" | "decoder"
    sobel_weight: float


STAGES = {1: StageSpec(4, False, "all", 0.0), 2: StageSpec(8, True, "temporal", 0.0),
          3: StageSpec(4, False, "decoder", 1.0)}


@dataclass
class TrainConfig:
    """One stage's run.  ``model_config`` is used only when stage 1 starts a new model.

    ``train_pool`` 0 draws a fresh clip for every sample; N > 0 cycles over N training
    clips made once (tiny runs, tests).  ``max_coc_px`` caps the CoC of the generated clips.
    ``display_weight`` adds the metric's own error (display-referred ``clip(x,0,1)^(1/2.2)``,
    L1 + per-clip RMSE, i.e. PSNR's) to the tone-space L1.
    ``cycles_data``: a folder of Cycles training scenes (:mod:`.cycles`); stages 1 and 3 then
    train a fraction ``cycles_fraction`` of their steps on crops of them (1-frame clips of
    ``size``), the rest on ray-traced clips; ``cycles_val`` (a disjoint folder) replaces the
    ray-traced validation split; ``cycles_limit`` > 0 loads only that many training scenes.
    ``hidden_fraction``: share of the ray-traced *training* clips that hide HDR emitters behind
    the outline of an in-focus layer (the validation clips stay the default split).
    """

    out: Path
    stage: int = 1
    steps: int = 1000
    clips_per_step: int = 2
    size: int = 64
    lr: float = 3e-4
    seed: int = 0
    val_every: int = 100
    val_clips: int = 8
    checkpoint_every: int = 100
    aperture_samples: int = 96
    max_coc_px: float = 14.0
    train_pool: int = 0
    device: str = "cpu"
    model_config: dict = field(default_factory=dict)
    grow_context: tuple = ()
    display_weight: float = 0.0
    cycles_data: Optional[Path] = None
    cycles_val: Optional[Path] = None
    cycles_fraction: float = 1.0
    cycles_limit: int = 0
    hidden_fraction: float = 0.0


def trainable_names(model: RefinerModel, trains: str) -> list[str]:
    if trains == "all":
        return [n for n, _ in model.named_parameters()]
    if trains == "temporal":
        return temporal_parameter_names(model)
    return decoder_parameter_names(model)


def sobel(x: torch.Tensor) -> torch.Tensor:
    """Horizontal and vertical Sobel responses of ``(N, C, H, W)`` -> ``(N, 2C, H, W)``."""
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    k = torch.stack([kx, kx.t()])[:, None].repeat(x.shape[1], 1, 1, 1)
    return F.conv2d(x, k, padding=1, groups=x.shape[1])


def clip_batch(clips: list[Clip], device: torch.device):
    """Network input, strength and the tone-space classical and truth of a list of clips."""
    def stack(key):
        return torch.from_numpy(np.concatenate([getattr(c, key) for c in clips])).to(device)

    aif = stack("all_in_focus").permute(0, 3, 1, 2)
    classical = stack("classical").permute(0, 3, 1, 2)
    truth = stack("truth").permute(0, 3, 1, 2)
    coc = stack("coc_px")[:, None]
    return aif, classical, truth, coc


def display_referred(x: torch.Tensor) -> torch.Tensor:
    """``clip(x, 0, 1) ** (1/2.2)`` as the benchmark scores it (offset so the gradient is finite)."""
    return (x.clamp(0.0, 1.0) + 1e-3) ** (1.0 / 2.2)


def refine_batch(model: RefinerModel, clips: list[Clip], frames: int, device: torch.device):
    """``(refined, truth)`` in tone space for a batch of clips of ``frames`` frames each."""
    aif, classical, truth, coc = clip_batch(clips, device)
    if all(c.strength_px is not None for c in clips):  # crops: K of the whole frames
        strength = torch.from_numpy(np.concatenate([c.strength_px for c in clips]).astype(np.float32)).to(device)
    else:
        strength = frame_strength(coc)
    cfg = model.config
    feats = model_inputs(aif, classical, coc, strength, cfg.num_bands, cfg.band_exponent)
    delta = model(feats, strength, num_frames=frames)
    return tone(classical) + delta, tone(truth)


def objective(refined: torch.Tensor, target: torch.Tensor, sobel_weight: float,
              display_weight: float = 0.0) -> torch.Tensor:
    """The training loss of tone-space ``refined`` against ``target`` (see :func:`loss_of`)."""
    loss = (refined - target).abs().mean()
    if sobel_weight:
        loss = loss + sobel_weight * (sobel(refined) - sobel(target)).abs().mean()
    if display_weight:
        # The refined image as the pipeline forms it: untone(tone(classical) + delta).
        diff = display_referred(untone(refined)) - display_referred(untone(target))
        rmse = diff.pow(2).flatten(1).mean(dim=1).add(1e-8).sqrt().mean()
        loss = loss + display_weight * (diff.abs().mean() + rmse)
    return loss


def loss_of(model: RefinerModel, clips: list[Clip], frames: int, sobel_weight: float,
            device: torch.device, display_weight: float = 0.0) -> torch.Tensor:
    """L1 in tone space of the refined clip against the truth (+ Sobel L1, + display-referred
    L1 + per-clip RMSE when ``display_weight``)."""
    return objective(*refine_batch(model, clips, frames, device), sobel_weight, display_weight)


def display_mse(refined: torch.Tensor, target: torch.Tensor) -> float:
    """The benchmark's error: mean squared difference of display-referred tone-space images."""
    return float((display_referred(untone(refined)) - display_referred(untone(target))).pow(2).mean())


def training_seed(seed: int, stage: int, step: int, i: int, per_step: int) -> int:
    """Seed of the i-th clip of a step; always below :data:`VALIDATION_SEED0`."""
    return (seed * 7919 + stage * 1_000_003 + step * per_step + i) % VALIDATION_SEED0


def uses_cycles(cfg: TrainConfig, spec: StageSpec) -> bool:
    """Cycles stills are 1-frame clips: stages 1 and 3 only (stage 2 trains time)."""
    return cfg.cycles_data is not None and spec.trains != "temporal"


def validation_clips(cfg: TrainConfig, spec: StageSpec) -> list[Clip]:
    """The fixed validation split: ray-traced seeds from :data:`VALIDATION_SEED0` up, or the
    crops of the Cycles validation scenes (``cycles_val``); never trained on."""
    if uses_cycles(cfg, spec) and cfg.cycles_val is not None:
        from focuspull.stages.refine.training.cycles import load_scenes, validation_crops  # noqa: PLC0415

        return validation_crops(load_scenes(cfg.cycles_val), cfg.size)
    return [_clip(cfg, spec, VALIDATION_SEED0 + i) for i in range(cfg.val_clips)]


def _clip(cfg: TrainConfig, spec: StageSpec, seed: int, hidden_fraction: float = 0.0) -> Clip:
    return make_clip(seed, spec.frames, cfg.size, perturb=spec.perturb, max_coc_px=cfg.max_coc_px,
                     aperture_count=cfg.aperture_samples, hidden_fraction=hidden_fraction)


class _TrainingClips:
    """Clips of training step ``step``: fresh seeds, or a cycle over a pool made once."""

    def __init__(self, cfg: TrainConfig, spec: StageSpec):
        self.cfg, self.spec = cfg, spec
        self.cycles = []
        if uses_cycles(cfg, spec):
            from focuspull.stages.refine.training.cycles import load_scenes  # noqa: PLC0415

            self.cycles = load_scenes(cfg.cycles_data, cfg.cycles_limit)
        self.pool = [] if self.cycles and cfg.cycles_fraction >= 1.0 else [
            _clip(cfg, spec, training_seed(cfg.seed, cfg.stage, 0, i, 1), cfg.hidden_fraction)
            for i in range(cfg.train_pool)]

    def is_cycles(self, step: int) -> bool:
        """Whether step ``step`` trains on Cycles crops (a pure function of the step)."""
        if not self.cycles:
            return False
        return bool(np.random.default_rng((self.cfg.seed, self.cfg.stage, step, 1)).random() < self.cfg.cycles_fraction)

    def at(self, step: int) -> list[Clip]:
        n = self.cfg.clips_per_step
        if self.is_cycles(step):
            from focuspull.stages.refine.training.cycles import random_crop  # noqa: PLC0415

            rng = np.random.default_rng((self.cfg.seed, self.cfg.stage, step, 2))
            return [random_crop(self.cycles[int(rng.integers(len(self.cycles)))], self.cfg.size, rng) for _ in range(n)]
        if self.pool:
            return [self.pool[(step * n + i) % len(self.pool)] for i in range(n)]
        return [_clip(self.cfg, self.spec, training_seed(self.cfg.seed, self.cfg.stage, step, i, n),
                      self.cfg.hidden_fraction) for i in range(n)]


def validate(model: RefinerModel, clips: list[Clip], spec: StageSpec, device: torch.device,
             display_weight: float = 0.0) -> tuple[float, float]:
    """``(loss, display-referred MSE)``, means over the clips (one shape per batch of up to 16;
    both are per-clip means, so batching does not change them)."""
    model.eval()
    parts = []
    with torch.no_grad():
        for i in range(0, len(clips), 16):
            group = clips[i:i + 16]
            same = len({c.coc_px.shape for c in group}) == 1 and len({c.strength_px is None for c in group}) == 1
            for part in [group] if same else [[c] for c in group]:
                refined, target = refine_batch(model, part, part[0].coc_px.shape[0], device)
                parts.append((float(objective(refined, target, spec.sobel_weight, display_weight)),
                              display_mse(refined, target), len(part)))
    model.train()
    total = sum(n for _, _, n in parts)
    return (sum(v * n for v, _, n in parts) / total, sum(m * n for _, m, n in parts) / total)


def load_start_model(cfg: TrainConfig) -> RefinerModel:
    out = Path(cfg.out)
    if (out / "config.json").is_file():
        model = RefinerModel.from_pretrained(str(out), local_files_only=True, low_cpu_mem_usage=False)
    elif cfg.stage != 1:
        raise InputError(f"stage {cfg.stage} starts from the model of the previous stage, but {out} has none",
                         f"run `focuspull train --stage {cfg.stage - 1} --out {out}` first")
    else:
        model = RefinerModel(**cfg.model_config)
    grow = tuple(int(c) for c in cfg.grow_context)
    have = tuple(int(c) for c in model.config.context_channels)
    if grow and have != grow:
        if have:
            raise InputError(f"--grow-context {list(grow)}: the model in {out} already has context levels {list(have)}",
                             "drop --grow-context to fine-tune it as it is")
        if cfg.stage != 1:
            raise InputError("--grow-context applies to stage 1 only", "grow the model in stage 1")
        model = grow_context(model, grow)  # zero-initialised: the same output until trained
    return model


def train_stage(cfg: TrainConfig, log: Optional[Callable[[str], None]] = None) -> dict:
    """Run (or resume) one stage; returns ``{"first_val", "last_val", "first_val_display_mse",
    "last_val_display_mse", "steps", "seconds"}`` (validation loss and the benchmark's
    display-referred MSE on the validation split, at the stage's first and last validation)."""
    if cfg.stage not in STAGES:
        raise InputError(f"stage must be 1, 2 or 3, got {cfg.stage}", "pass --stage 1, 2 or 3")
    spec = STAGES[cfg.stage]
    device = torch.device(cfg.device)
    stage_dir = Path(cfg.out) / f"stage{cfg.stage}"
    stage_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = stage_dir / "checkpoint.pt"
    torch.manual_seed(cfg.seed)
    model = load_start_model(cfg).to(device)
    names = set(trainable_names(model, spec.trains))
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)
    params = [p for n, p in model.named_parameters() if n in names]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    step, history = 0, []
    if ckpt_path.is_file():  # resume
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, history = int(state["step"]), json.loads(state["history"])
    # Cosine decay to 10 % over the stage, a function of the step: a resumed run continues it.
    def learning_rate(s: int) -> float:
        return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(s, cfg.steps) / max(cfg.steps, 1))))
    val = validation_clips(cfg, spec)
    source = _TrainingClips(cfg, spec)
    started = time.monotonic()
    model.train()
    if step == 0:
        loss, mse = validate(model, val, spec, device, cfg.display_weight)
        history.append({"step": 0, "val_loss": loss, "val_display_mse": mse})
        _append(stage_dir / "log.jsonl", history[-1])
    while step < cfg.steps:
        clips = source.at(step)
        loss = loss_of(model, clips, clips[0].coc_px.shape[0], spec.sobel_weight, device, cfg.display_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        for group in opt.param_groups:
            group["lr"] = learning_rate(step)
        opt.step()
        step += 1
        entry = {"step": step, "train_loss": round(float(loss.detach()), 6)}
        if step % cfg.val_every == 0 or step == cfg.steps:
            entry["val_loss"], entry["val_display_mse"] = validate(model, val, spec, device, cfg.display_weight)
        if "val_loss" in entry or step % 10 == 0:
            history.append(entry)
            _append(stage_dir / "log.jsonl", entry)
            if log is not None:
                log(f"stage {cfg.stage} step {step}/{cfg.steps} train {entry['train_loss']:.5f}"
                    + (f" val {entry['val_loss']:.5f} (display MSE {entry['val_display_mse']:.6f})"
                       if "val_loss" in entry else ""))
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _save_checkpoint(ckpt_path, model, opt, step, history)
    model.save_pretrained(str(cfg.out), safe_serialization=True)
    vals = [h for h in history if "val_loss" in h]
    return {"first_val": vals[0]["val_loss"], "last_val": vals[-1]["val_loss"],
            "first_val_display_mse": vals[0].get("val_display_mse"), "last_val_display_mse": vals[-1].get("val_display_mse"),
            "steps": step, "seconds": time.monotonic() - started}


def _save_checkpoint(path: Path, model, opt, step: int, history: list) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                "history": json.dumps(history)}, tmp)
    tmp.replace(path)  # atomic: a killed run leaves the previous checkpoint


def _append(path: Path, entry: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(entry) + "\n")
