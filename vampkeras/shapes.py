"""What an image shape is, in one place: (H, W) for one channel (grey or binary images: the paper's datasets)
or (H, W, C) for C channels (C = 3: colour). A single channel is always written (H, W), so that the paper's
datasets, their run folders and their SavedModels keep the shapes they have always had; arrays of shape
(N, H, W, 1) are accepted wherever (N, H, W) are.

Flattened images, as the models see them, are (N, D) with D = H·W·C in row-major order of (H, W, C): the
channels of a pixel are adjacent.
"""

from __future__ import annotations

import math

__all__ = ["canonical", "channels", "height_width", "with_channels", "num_values", "num_positions", "describe",
           "batch_shapes", "bits_per_dim"]


def canonical(shape) -> tuple[int, ...]:
    """``shape`` (H, W) or (H, W, C) as a tuple of ints, with C = 1 dropped: (H, W) or (H, W, C > 1)."""
    shape = tuple(int(size) for size in shape)
    if len(shape) == 3 and shape[2] == 1:
        shape = shape[:2]
    if len(shape) not in (2, 3) or min(shape) < 1:
        raise ValueError(f"an image shape is (H, W) or (H, W, C) of positive sizes, not {shape}")
    return shape


def channels(shape) -> int:
    """C: 1 for (H, W), else the last size."""
    return int(shape[2]) if len(shape) == 3 else 1


def height_width(shape) -> tuple[int, int]:
    """(H, W) of an image shape, with or without channels."""
    return int(shape[0]), int(shape[1])


def with_channels(shape) -> tuple[int, int, int]:
    """(H, W, C), C = 1 written out: the NHWC shape a convolution takes."""
    return (*height_width(shape), channels(shape))


def num_values(shape) -> int:
    """D = H·W·C, the length of a flattened image."""
    return math.prod(with_channels(shape))


def num_positions(shape) -> int:
    """H·W, the number of pixel positions (each holding C values)."""
    return math.prod(height_width(shape))


def describe(shape) -> str:
    """'28×28' or '32×32×3', for messages."""
    return "×".join(str(size) for size in canonical(shape))


def batch_shapes(shape) -> list[tuple[int, ...]]:
    """The per-image shapes an array of N images may have: (H, W[, C]), the flattened (D,), and for one channel
    also (H, W, 1)."""
    shape = canonical(shape)
    accepted = [shape, (num_values(shape),)]
    if len(shape) == 2:
        accepted.append((*shape, 1))
    return accepted


def bits_per_dim(log_likelihood: float, image_shape) -> float:
    """Bits per dimension of a mean log-likelihood in nats: −log p(x) / (H·W·C · ln 2) (the unit the paper
    reports for Frey Faces and Histopathology; without TensorFlow, so comparisons convert without loading it)."""
    return float(-log_likelihood / (num_values(image_shape) * math.log(2.0)))
