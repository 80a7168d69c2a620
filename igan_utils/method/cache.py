"""What the method asks of an artifact store, and the fingerprints that key it.

The method never imports the book's store (:class:`igan_utils.book.store.Store`): a function that
can reuse earlier work takes any object with the two methods of :class:`ArtifactCache`, and a
resumable training loop any object with those of :class:`PartialState`. Keys are built from
configurations and from :func:`fingerprint` / :func:`weights_fingerprint`, never from file names,
so moving code between modules leaves every stored artifact valid.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Protocol, TypeVar

import torch

T = TypeVar("T")


def fingerprint(*tensors: torch.Tensor) -> str:
    """16-hex-digit content hash of tensors (values, shapes and dtypes)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def weights_fingerprint(model: torch.nn.Module) -> str:
    """The fingerprint of a model's weights (every tensor of its ``state_dict``): what ties a stored
    interpreter, decoder or evaluation to the exact model it was made for."""
    return fingerprint(*model.state_dict().values())


class PartialState(Protocol):
    """The periodic state of an unfinished job: ``load()`` gives the last saved dict (or None),
    ``save(state)`` replaces it."""

    def load(self) -> dict | None: ...

    def save(self, state: dict) -> None: ...


class ArtifactCache(Protocol):
    """An artifact store: ``get_or_create(kind, config, create, fmt, resumable=, work=, about=)`` returns
    the artifact stored for (kind, config), or calls ``create()`` (``create(partial_state)`` when
    resumable), stores and returns its result; ``metadata(kind, config, fmt)`` is the stored sidecar
    (with ``seconds``, the time it took to make)."""

    def get_or_create(self, kind: str, config: dict, create: Callable[..., T], fmt: str = "torch", *,
                      resumable: bool = False, work: Callable[[T], dict] | None = None,
                      about: dict | None = None) -> T: ...

    def metadata(self, kind: str, config: dict, fmt: str = "torch") -> dict[str, Any]: ...
