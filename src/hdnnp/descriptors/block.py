"""The interface of one evaluated block of centre atoms, shared by the kernel path
(:class:`~hdnnp.descriptors.engine.KernelBlock`) and the tensor path
(:class:`~hdnnp.descriptors.tensor.TensorBlock`); its own module so that neither path
imports the other's."""

from __future__ import annotations

import torch


class DescriptorBlock:
    """Centres ``centres`` (atom indices of the batch) and their pairs ``pairs`` (a slice of
    the batch's pair list): :attr:`features` and :meth:`pair_gradient`."""

    centres: slice
    pairs: slice
    features: torch.Tensor

    def pair_gradient(self, de_dg: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError
