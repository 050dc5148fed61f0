"""Frames as tensors and back, and the colour and size operations on tensors that do not depend on a model."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# ITU-R BT.601 luma weights, the Y of YCbCr.
_LUMA = (0.299, 0.587, 0.114)


def frames_to_tensor(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """[B,H,W,3] uint8 RGB → [B,3,H,W] float in [0,1] on `device`; converts after the copy, so 1 byte per
    channel crosses the bus, from pinned memory when the target is a GPU."""
    if isinstance(frames, np.ndarray) and not frames.flags.writeable:
        frames = frames.copy()  # torch cannot wrap read-only arrays (e.g. PIL's)
    tensor = torch.as_tensor(frames)
    if device.type == "cuda":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device).permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_frames(images: torch.Tensor) -> np.ndarray:
    """[B,3,H,W] float in [0,1] → [B,H,W,3] uint8 RGB on the CPU, rounded to nearest."""
    quantised = images.float().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)
    return quantised.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of [B,3,H,W] RGB, shaped [B,1,H,W]."""
    weights = rgb.new_tensor(_LUMA)[None, :, None, None]
    return (rgb * weights).sum(dim=1, keepdim=True)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer (Gatys et al. 2016, 'Preserving color'): keep the stylized image's luma and
    the content's chroma. Adding the luma difference to every channel keeps CbCr unchanged."""
    return (content + luminance(stylized) - luminance(content)).clamp(0.0, 1.0)


def square_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Centre square crop of [B,3,H,W], resized to size x size with an antialiased bicubic filter."""
    height, width = images.shape[2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = images[:, :, top : top + side, left : left + side]
    return F.interpolate(square, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
