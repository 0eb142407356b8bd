"""Stand-ins shared by the unit tests."""

import dataclasses


@dataclasses.dataclass
class ImageSpec:
    """The part of a :class:`vampkeras.data.DatasetSpec` that :func:`vampkeras.models.build_model` reads: the
    image shape (H, W) or (H, W, C), its value count D and the likelihood, for tiny models without a dataset."""

    image_shape: tuple = (4, 5)
    likelihood: str = "bernoulli"

    @property
    def num_pixels(self) -> int:
        from vampkeras.shapes import num_values
        return num_values(self.image_shape)
