"""A deliberately plain float64 numpy implementation of the renderer's formulation.

No crops, no coarse levels, no torch in the compositing: every plane is blurred over the
whole frame by a direct FFT convolution and composited with the same occlusion rule.
Plane placement and the hidden layer are shared with focuspull (they are inputs here).
"""
import numpy as np
import torch

from focuspull.stages.aperture import aperture_kernel
from focuspull.stages.render.mpi import PLANE_GROWTH, extend_borders, hidden_layer, place_planes, plane_units
from focuspull.stages.render.layered import frame_border_px


def _convolve_full(img, kernel):
    """Linear 'same' convolution of HxWxC with a (2R+1)^2 kernel, zero outside."""
    h, w, _ = img.shape
    r = kernel.shape[0] // 2
    fh, fw = h + 2 * r, w + 2 * r
    spec = np.fft.rfft2(img, s=(fh, fw), axes=(0, 1))
    kspec = np.fft.rfft2(kernel.astype(np.float64), s=(fh, fw))
    full = np.fft.irfft2(spec * kspec[..., None], s=(fh, fw), axes=(0, 1))
    return full[r:r + h, r:r + w]


def _tent(units, stack, plane):
    f = np.clip(units - stack.first, 0, stack.count - 1)
    return np.clip(1.0 - np.abs(f - plane), 0.0, 1.0)


def reference_render(image, coc, aperture=None, spacing=1.0, growth=PLANE_GROWTH):
    # The border extension is an input here, like the hidden layer: shared with focuspull.
    border = frame_border_px(float(np.abs(coc).max()), level_radius_px=float("inf"))
    t_img, t_coc = extend_borders(torch.from_numpy(image.astype(np.float64)).permute(2, 0, 1)[None],
                                  torch.from_numpy(coc.astype(np.float64))[None, None], border)
    image = t_img[0].permute(1, 2, 0).numpy()
    coc = t_coc[0, 0].numpy()
    h, w, c = image.shape
    # Plane placement (spacing growing with |CoC|) is shared with focuspull, like the
    # hidden layer, which works in plane units.
    stack = place_planes(coc.min(), coc.max(), spacing, growth)
    t_img = torch.from_numpy(image).permute(2, 0, 1)[None]
    t_units = plane_units(torch.from_numpy(coc)[None, None], stack)
    units = t_units[0, 0].numpy()
    hid_col, hid_units, hid_mask = hidden_layer(t_img, t_units, 1.0, float(np.abs(coc).max()))
    hid_col = hid_col[0].permute(1, 2, 0).numpy()
    hid_units = hid_units[0, 0].numpy()
    hid_mask = hid_mask[0, 0].numpy()
    total = np.zeros((h, w, c + 1))
    blurred_cover = []  # per plane, near -> far
    for p in range(stack.count):
        wv = _tent(units, stack, p)
        wh = _tent(hid_units, stack, p) * hid_mask
        layer = np.concatenate([image * wv[..., None] + hid_col * wh[..., None],
                                (wv + wh)[..., None]], axis=2)
        kernel = aperture_kernel(aperture, stack.radius_px(p))
        b = _convolve_full(layer, kernel)
        in_front = sum(blurred_cover[:max(0, p - 1)], np.zeros((h, w)))
        transmit = np.clip(1.0 - in_front, 0.0, 1.0)
        total += b * transmit[..., None]
        blurred_cover.append(b[..., -1])
    out = total[..., :c] / total[..., c:]
    return out[border:h - border, border:w - border]
