"""The networks of the paper's models (§5.1, the authors' architectures), as Keras layers.

Images enter flattened, (N, D) with D = H·W·C (row-major over (H, W, C), see :mod:`vampkeras.shapes`);
conv networks reshape to (N, H, W, C) inside. Gaussian networks return ``(mean, log_var)``, each (N, M),
log-variance clipped to [-6, 2]. Decoders return the likelihood's outputs (N, outputs_per_value · D), grouped
per output kind (all means, then all log-scales), each group in the flattened images' order. Outputs are float32 even when the layers compute in float16
(mixed precision): every density is computed in float32.
"""

from __future__ import annotations

import keras
from keras import ops

from vampkeras import shapes
from vampkeras.errors import ConfigError
from vampkeras.layers import GatedConv2D, GatedDense, GaussianHead, MaskedConv2D

__all__ = ["GaussianMLP", "DecoderMLP", "ConvFeatures", "GaussianConv", "JointGaussian", "JointDecoder",
           "ConvDecoder", "PixelCNNDecoder", "ImageEncoder", "ImageDecoder", "conv_output_size", "to_images",
           "from_channels", "Z2_CONV_STACK", "Z1_CONV_STACK", "DECODER_CONV_LAYERS", "DECODER_CONV_CHANNELS",
           "PIXELCNN_LAYERS", "PIXELCNN_CHANNELS"]

# (filters, kernel, stride) of the conv encoders: q(z2|x) and q(z1|x, z2).
Z2_CONV_STACK = ((32, 7, 1), (32, 3, 2), (64, 5, 1), (64, 3, 2), (6, 3, 1))
Z1_CONV_STACK = ((32, 3, 1), (32, 3, 2), (64, 3, 1), (64, 3, 2), (6, 3, 1))
DECODER_CONV_LAYERS = 4
DECODER_CONV_CHANNELS = 64
PIXELCNN_LAYERS = 8
PIXELCNN_CHANNELS = 64


def conv_output_size(image_shape, stack) -> int:
    """Flattened size after a 'same'-padded conv ``stack`` on a (H, W[, C]) image (294 for 28x28)."""
    height, width = shapes.height_width(image_shape)
    for _, _, stride in stack:
        height, width = -(-height // stride), -(-width // stride)
    return height * width * stack[-1][0]


def to_images(flat, image_shape):
    """(N, D) → (N, H, W, C)."""
    return ops.reshape(flat, (-1, *shapes.with_channels(image_shape)))


def from_channels(outputs, image_shape):
    """Per-pixel outputs (N, H, W, K·C), K output kinds of C channels each (channel k·C + c), → (N, K·D):
    kind-major, each kind's D = H·W·C values in the flattened images' order. For C = 1: all pixels of
    output channel 0 first."""
    height, width, channels = shapes.with_channels(image_shape)
    kinds = ops.shape(outputs)[-1] // channels
    outputs = ops.reshape(outputs, (-1, height, width, kinds, channels))
    return ops.reshape(ops.transpose(outputs, (0, 3, 1, 2, 4)), (-1, kinds * height * width * channels))


class GaussianMLP(keras.layers.Layer):
    """Gated dense layers → Gaussian head: (N, D_in) → (mean, log_var)."""

    def __init__(self, hidden_units: int, latent_dim: int, depth: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [GatedDense(hidden_units, name=f"gated_{i + 1}") for i in range(depth)]
        self.head = GaussianHead(latent_dim, name="head")

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.head(x)


class DecoderMLP(keras.layers.Layer):
    """Gated dense layers → linear outputs: (N, M) → (N, outputs)."""

    def __init__(self, hidden_units: int, outputs: int, depth: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [GatedDense(hidden_units, name=f"gated_{i + 1}") for i in range(depth)]
        self.out = keras.layers.Dense(outputs, name="outputs")

    def call(self, z):
        for layer in self.hidden:
            z = layer(z)
        return ops.cast(self.out(z), "float32")


class ConvFeatures(keras.layers.Layer):
    """A gated conv stack on a flattened image: (N, D) → (N, conv_output_size)."""

    def __init__(self, image_shape, stack, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(image_shape)
        self.convs = [GatedConv2D(f, k, s, name=f"gated_conv_{i + 1}") for i, (f, k, s) in enumerate(stack)]

    def call(self, x):
        h = to_images(x, self.image_shape)
        for layer in self.convs:
            h = layer(h)
        return ops.reshape(h, (ops.shape(h)[0], -1))


class GaussianConv(keras.layers.Layer):
    """q(z2|x) of convHVAE: gated conv stack → flatten → Gaussian head."""

    def __init__(self, image_shape, latent_dim: int, stack=Z2_CONV_STACK, **kwargs):
        super().__init__(**kwargs)
        self.features = ConvFeatures(image_shape, stack, name="features")
        self.head = GaussianHead(latent_dim, name="head")

    def call(self, x):
        return self.head(self.features(x))


class JointGaussian(keras.layers.Layer):
    """q(z1|x, z2): features(x) ‖ gated dense(z2) → gated dense(hidden) → Gaussian head.

    For the MLP model features(x) is a gated dense layer of ``hidden_units``; for the conv models it is
    the 3x3 gated conv stack, and z2 is mapped to the same size (294 for 28x28).

    x is (B, D) and z2 (S·B, M): S draws of z2 per image, sample-major (row s·B + b belongs to image b),
    as the importance-sampled estimate makes them. features(x) is computed once per image and repeated
    for its S draws, not run on S copies of the image. Returns (mean, log_var), each (S·B, M).
    """

    def __init__(self, x_features: keras.layers.Layer, z_units: int, hidden_units: int, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.x_features = x_features
        self.z_features = GatedDense(z_units, name="z2_features")
        self.joint = GatedDense(hidden_units, name="joint")
        self.head = GaussianHead(latent_dim, name="head")

    def call(self, x, z2):
        features = self.x_features(x)                                                       # (B, F)
        features = ops.tile(features, (ops.shape(z2)[0] // ops.shape(features)[0], 1))      # (S·B, F)
        return self.head(self.joint(ops.concatenate([features, self.z_features(z2)], axis=-1)))


class JointDecoder(keras.layers.Layer):
    """p(x|z1, z2) of the MLP HVAE: gated dense(z1) ‖ gated dense(z2) → gated dense → linear outputs."""

    def __init__(self, hidden_units: int, outputs: int, **kwargs):
        super().__init__(**kwargs)
        self.z1_features = GatedDense(hidden_units, name="z1_features")
        self.z2_features = GatedDense(hidden_units, name="z2_features")
        self.joint = GatedDense(hidden_units, name="joint")
        self.out = keras.layers.Dense(outputs, name="outputs")

    def call(self, z1, z2, x=None):
        h = ops.concatenate([self.z1_features(z1), self.z2_features(z2)], axis=-1)
        return ops.cast(self.out(self.joint(h)), "float32")


class ConvDecoder(keras.layers.Layer):
    """p(x|z1, z2) of convHVAE: gated dense(z1→300) ‖ gated dense(z2→300) → gated dense(D) → (H, W, C)
    → 4 gated 3x3 convs of 64 channels → 1x1 conv to the likelihood's outputs, ``outputs_per_value`` for each
    of the C channels."""

    def __init__(self, image_shape, hidden_units: int, outputs_per_value: int, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(image_shape)
        self.num_pixels = shapes.num_values(self.image_shape)
        self.z1_features = GatedDense(hidden_units, name="z1_features")
        self.z2_features = GatedDense(hidden_units, name="z2_features")
        self.to_image = GatedDense(self.num_pixels, name="to_image")
        self.convs = [GatedConv2D(DECODER_CONV_CHANNELS, 3, name=f"gated_conv_{i + 1}")
                      for i in range(DECODER_CONV_LAYERS)]
        self.out = keras.layers.Conv2D(outputs_per_value * shapes.channels(self.image_shape), 1, name="outputs")

    def call(self, z1, z2, x=None):
        h = self.to_image(ops.concatenate([self.z1_features(z1), self.z2_features(z2)], axis=-1))
        h = to_images(h, self.image_shape)
        for layer in self.convs:
            h = layer(h)
        return ops.cast(from_channels(self.out(h), self.image_shape), "float32")


class PixelCNNDecoder(keras.layers.Layer):
    """p(x|z1, z2) of PixelHVAE: z1 and z2 each mapped by a gated dense layer to one image-sized channel,
    stacked with x's C channels → masked conv "A" → 7 masked convs "B" (64 channels, 3x3, ReLU) → 1x1 conv to
    the likelihood's outputs for each of the C channels. The masks are spatial: the outputs of pixel i depend
    on x only through the pixels < i (row-major, all their channels), so p(x|z) = Π_i p(x_i | x_<i, z) with
    the C channels of pixel i independent given (x_<i, z): a normalised autoregressive model, whose
    log p(x|z) is one pass and whose sampling is one pass per pixel."""

    def __init__(self, image_shape, outputs_per_value: int, channels: int = PIXELCNN_CHANNELS,
                 layers: int = PIXELCNN_LAYERS, **kwargs):
        super().__init__(**kwargs)
        self.image_shape = tuple(image_shape)
        positions = shapes.num_positions(self.image_shape)
        self.z1_features = GatedDense(positions, name="z1_features")
        self.z2_features = GatedDense(positions, name="z2_features")
        self.masked = [MaskedConv2D(channels, 3, "A" if i == 0 else "B", name=f"masked_conv_{i + 1}")
                       for i in range(layers)]
        self.out = keras.layers.Conv2D(outputs_per_value * shapes.channels(self.image_shape), 1, name="outputs")

    @property
    def reach(self) -> int:
        """How far a pixel's outputs look: the rows above it and the columns on either side, one per masked
        3x3 layer (8)."""
        return sum(layer.kernel_size // 2 for layer in self.masked)

    def latent_channels(self, z1, z2):
        """z1, z2 (N, M) → (N, H, W, 2): the latents as two image-shaped channels."""
        grey = shapes.height_width(self.image_shape)
        return ops.concatenate([to_images(self.z1_features(z1), grey), to_images(self.z2_features(z2), grey)],
                               axis=-1)

    def pad_for_pixels(self, images):
        """(N, H, W, C) → (N, H + r, W + 2r, C), r = :attr:`reach`: zeros above and on both sides, the
        padding that :meth:`pixel_outputs` cuts its windows from."""
        return ops.pad(images, ((0, 0), (self.reach, 0), (self.reach, self.reach), (0, 0)))

    def pixel_outputs(self, padded_pixels, padded_latents, row, column):
        """The outputs of pixel (row, column) alone, (N, outputs_per_value·C) float32, equal to the whole-image
        pass's: the masked stack runs unpadded on the (r + 1) x (2r + 1) window of the padded image (r =
        :attr:`reach`) that the pixel depends on, each layer giving one row and two columns fewer (8x15 →
        ... → 1x1 for 28x28: 1/5 of the work of running it on the pixel's rows). Positions outside the image
        are zeroed after every layer, as the whole-image pass's 'same' padding sees them.
        padded_pixels (N, H + r, W + 2r, C), padded_latents (N, H + r, W + 2r, 2) from
        :meth:`pad_for_pixels`; row, column int32 scalars."""
        size = self.reach
        h = ops.concatenate([padded_pixels[:, row:row + size + 1, column:column + 2 * size + 1],
                             padded_latents[:, row:row + size + 1, column:column + 2 * size + 1]], axis=-1)
        for layer in self.masked:
            h = ops.relu(layer.call_unpadded(h))
            size -= layer.kernel_size // 2
            rows = row - size + ops.arange(size + 1)                # the image rows and columns h covers now
            columns = column - size + ops.arange(2 * size + 1)
            inside = ((rows >= 0)[:, None] & (columns >= 0)[None, :] & (columns < self.image_shape[1])[None, :])
            h = h * ops.cast(inside, h.dtype)[None, :, :, None]
        return ops.cast(self.out(h)[:, 0, 0], "float32")

    def call(self, z1, z2, x):
        h = ops.concatenate([to_images(x, self.image_shape), self.latent_channels(z1, z2)], axis=-1)
        for layer in self.masked:
            h = ops.relu(layer(h))
        return from_channels(ops.cast(self.out(h), "float32"), self.image_shape)


class ImageEncoder(keras.layers.Layer):
    """A user's Keras encoder on images: flattened x (N, D) → (N, H, W, C) → ``network`` → (mean, log_var),
    each (N, latent_dim) float32. The network returns the pair itself (a list or tuple of two tensors) or one
    (N, 2·latent_dim) tensor, split in half. The log-variance is clipped to [-6, 2] as the built-in encoders'."""

    def __init__(self, network, image_shape, latent_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.image_shape = tuple(image_shape)
        self.latent_dim = int(latent_dim)

    def call(self, x):
        outputs = self.network(to_images(x, self.image_shape))
        if isinstance(outputs, (list, tuple)):
            if len(outputs) != 2:
                raise ConfigError(f"your encoder returned {len(outputs)} tensors; it returns (mean, log_var)")
            mean, log_var = outputs
        else:
            mean, log_var = ops.split(outputs, 2, axis=-1)
        for name, value in (("mean", mean), ("log-variance", log_var)):
            if len(value.shape) != 2 or value.shape[-1] != self.latent_dim:
                raise ConfigError(f"your encoder's {name} has shape {tuple(value.shape)}; it must be (N, "
                                  f"{self.latent_dim}), N images by latent_dim")
        return ops.cast(mean, "float32"), ops.clip(ops.cast(log_var, "float32"), -6.0, 2.0)


class ImageDecoder(keras.layers.Layer):
    """A user's Keras decoder: z (N, M) → the likelihood's parameters, (N, K·D) as the built-in decoders give
    them (K = outputs per value: 1 for Bernoulli logits, 2 for the discretized logistic's mean logits and
    log-scales, each group of D in the flattened images' order), or image-shaped (N, H, W, K·C) (channel
    k·C + c: output kind k of channel c), reshaped here to (N, K·D)."""

    def __init__(self, network, image_shape, outputs_per_value: int, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.image_shape = tuple(image_shape)
        self.outputs_per_value = int(outputs_per_value)

    def call(self, z):
        outputs = self.network(z)
        height, width, channels = shapes.with_channels(self.image_shape)
        units = self.outputs_per_value * height * width * channels
        if len(outputs.shape) == 4 and tuple(outputs.shape[1:]) == (height, width, self.outputs_per_value * channels):
            outputs = from_channels(outputs, self.image_shape)
        elif not (len(outputs.shape) == 2 and outputs.shape[-1] == units):
            raise ConfigError(f"your decoder returned shape {tuple(outputs.shape)}; the likelihood needs (N, {units}) "
                              f"or (N, {height}, {width}, {self.outputs_per_value * channels})")
        return ops.cast(outputs, "float32")
