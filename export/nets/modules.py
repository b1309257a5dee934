"""Network modules: each one idea, its shapes in the docstring, hyperparameters in ``__init__``.

Every module takes ``x`` ``(batch, n_features, n_frames)`` and an optional ``lengths``
``(batch,)`` (valid frames per item; the rest is padding), so pooling never averages padding.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AttentionPool", "ConvBlock", "CNN1D", "CRNN", "PooledMLP", "frame_mask",
           "reverse_gradient", "ARCHITECTURES"]


def frame_mask(lengths: torch.Tensor | None, n_frames: int) -> torch.Tensor | None:
    """``(batch, n_frames)`` bool, True on valid frames; None when there is no padding."""
    if lengths is None:
        return None
    return torch.arange(n_frames, device=lengths.device)[None, :] < lengths[:, None]


class AttentionPool(nn.Module):
    """Attention pooling over time: a weighted mean and standard deviation of the frames.

    The weight of each frame is a softmax over time of ``v . tanh(W x_t + b)`` (Okabe et al.
    2018, attentive statistics pooling), padding excluded.

    Parameters
    ----------
    channels : int
        Features per frame.
    hidden : int
        Width of the attention's hidden layer.

    Shapes
    ------
    x : Tensor [shape=(batch, channels, n_frames)]
    lengths : Tensor [shape=(batch,)], int, or None
    returns : Tensor [shape=(batch, 2 * channels)]
        Weighted mean and standard deviation, side by side.
    """

    def __init__(self, channels: int, hidden: int = 64):
        super().__init__()
        self.score = nn.Sequential(nn.Conv1d(channels, hidden, 1), nn.Tanh(),
                                   nn.Conv1d(hidden, 1, 1))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Pool ``x`` over time (shapes in the class docstring)."""
        e = self.score(x)  # (batch, 1, n_frames)
        mask = frame_mask(lengths, x.shape[-1])
        if mask is not None:
            e = e.masked_fill(~mask[:, None, :], float("-inf"))
        w = torch.softmax(e, dim=-1)
        mean = torch.sum(w * x, dim=-1)
        var = torch.sum(w * x * x, dim=-1) - mean * mean
        return torch.cat([mean, torch.sqrt(torch.clamp(var, min=1e-6))], dim=1)


class ConvBlock(nn.Module):
    """Conv1d over time, batch norm, ReLU, and optionally max pooling by 2.

    Shapes
    ------
    x : Tensor [shape=(batch, in_channels, n_frames)]
    returns : Tensor [shape=(batch, out_channels, n_frames // 2 if pool else n_frames)]
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5,
                 pool: bool = True, dropout: float = 0.0):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.norm = nn.BatchNorm1d(out_channels)
        self.pool = nn.MaxPool1d(2) if pool else None
        self.drop = nn.Dropout(dropout) if dropout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output (shapes in the class docstring)."""
        x = torch.relu(self.norm(self.conv(x)))
        if self.pool is not None:
            x = self.pool(x)
        if self.drop is not None:
            x = self.drop(x)
        return x


def _pooled_lengths(lengths: torch.Tensor | None, n_pools: int) -> torch.Tensor | None:
    if lengths is None:
        return None
    for _ in range(n_pools):
        lengths = torch.div(lengths, 2, rounding_mode="floor")
    return torch.clamp(lengths, min=1)


class _ConvFront(nn.Module):
    """Convolution blocks over time: what CNN1D and CRNN share (``self.blocks``, ``n_pools``)."""

    blocks: nn.ModuleList
    n_pools: int

    @property
    def min_frames(self) -> int:
        """Fewest input frames the network takes (each pooling halves them)."""
        return 2 ** self.n_pools

    def convolve(self, x: torch.Tensor) -> torch.Tensor:
        """The blocks' output: ``(batch, channels, n_frames // 2 ** n_pools)``."""
        for block in self.blocks:
            x = block(x)
        return x


class CNN1D(_ConvFront):
    """A 1-D convolutional network over the frame sequence, with attention pooling (seed 002).

    Parameters
    ----------
    n_features : int
        Rows of the frame matrix.
    n_classes : int
    channels : tuple of int
        Output channels of each convolution block; every block but the last halves the frames.
    kernel_size : int
    dropout : float
        Dropout after each block and before the classifier.

    Shapes
    ------
    x : Tensor [shape=(batch, n_features, n_frames)]
    lengths : Tensor [shape=(batch,)] or None
    returns : Tensor [shape=(batch, n_classes)], logits
    """

    def __init__(self, n_features: int, n_classes: int, channels: tuple[int, ...] = (96, 128, 128),
                 kernel_size: int = 5, dropout: float = 0.2):
        super().__init__()
        widths = (n_features, *channels)
        self.blocks = nn.ModuleList([
            ConvBlock(widths[i], widths[i + 1], kernel_size, pool=i < len(channels) - 1,
                      dropout=dropout)
            for i in range(len(channels))
        ])
        self.n_pools = len(channels) - 1
        self.pool = AttentionPool(channels[-1])
        self.embed_size = 2 * channels[-1]
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * channels[-1], n_classes))

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled representation the head classifies, ``(batch, embed_size)``.

        The attention pooling's weighted mean and standard deviation of the last block's
        channels: what a distilled student regresses onto its teacher's embedding.
        """
        return self.pool(self.convolve(x), _pooled_lengths(lengths, self.n_pools))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of ``x`` (shapes in the class docstring)."""
        return self.head(self.embed(x, lengths))


class CRNN(_ConvFront):
    """Convolutions, then a bidirectional GRU over time, with attention pooling (seed 004).

    Parameters
    ----------
    n_features : int
    n_classes : int
    channels : tuple of int
        Convolution blocks before the GRU, each halving the frames.
    hidden : int
        GRU units per direction.
    dropout : float

    Shapes
    ------
    x : Tensor [shape=(batch, n_features, n_frames)]
    lengths : Tensor [shape=(batch,)] or None
    returns : Tensor [shape=(batch, n_classes)], logits
    """

    def __init__(self, n_features: int, n_classes: int, channels: tuple[int, ...] = (96, 128),
                 hidden: int = 64, kernel_size: int = 5, dropout: float = 0.2):
        super().__init__()
        widths = (n_features, *channels)
        self.blocks = nn.ModuleList([
            ConvBlock(widths[i], widths[i + 1], kernel_size, pool=True, dropout=dropout)
            for i in range(len(channels))
        ])
        self.n_pools = len(channels)
        self.rnn = nn.GRU(channels[-1], hidden, batch_first=True, bidirectional=True)
        self.pool = AttentionPool(2 * hidden)
        self.embed_size = 4 * hidden
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, n_classes))

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled representation the head classifies, ``(batch, embed_size)``."""
        # h: (batch, n_frames, 2 * hidden). Padding is at the end: the forward direction never
        # sees it; the backward one starts in it, which the training's equal-length crops avoid
        # and single-clip inference never has.
        h, _ = self.rnn(self.convolve(x).transpose(1, 2))
        return self.pool(h.transpose(1, 2), _pooled_lengths(lengths, self.n_pools))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of ``x`` (shapes in the class docstring)."""
        return self.head(self.embed(x, lengths))


class PooledMLP(nn.Module):
    """A one-hidden-layer perceptron over the pooled feature vector, its input standardised.

    The scikit-learn MLP's place (``StandardScaler`` then ``MLPClassifier``), trained with
    PyTorch so that its loss can be masked to the labels each corpus has and its examples
    weighted by corpus and class.

    Parameters
    ----------
    n_features : int
        Width of the pooled vector (:func:`ser_edge.features.feature_vector`).
    n_classes : int
    hidden : int
        Units of the hidden layer (ReLU).
    dropout : float
        Dropout on the hidden layer (and a fifth of it on the input).

    Shapes
    ------
    x : Tensor [shape=(batch, n_features)]
    returns : Tensor [shape=(batch, n_classes)], logits
    """

    min_frames = 1

    def __init__(self, n_features: int, n_classes: int, hidden: int = 256, dropout: float = 0.3):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.hidden_size = self.embed_size = hidden
        self.body = nn.Sequential(nn.Dropout(dropout / 5), nn.Linear(n_features, hidden),
                                  nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def standardise_on(self, X: torch.Tensor) -> None:
        """Set the input's standardisation to the mean and standard deviation of rows ``X``."""
        self.mean.copy_(X.mean(dim=0))
        self.scale.copy_(1.0 / torch.clamp(X.std(dim=0, unbiased=False), min=1e-6))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden layer's activations, ``(batch, hidden)``."""
        return self.body((x - self.mean) * self.scale)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The representation the head classifies: :meth:`hidden`, ``(batch, embed_size)``."""
        return self.hidden(x)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits of ``x`` (shapes in the class docstring)."""
        return self.head(self.hidden(x))


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-weight`` backward (Ganin & Lempitsky 2015)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:  # noqa: ANN001
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float) -> torch.Tensor:
    """``x`` as it is, but its gradient reversed and scaled by ``weight`` on the way back.

    The domain-adversarial trick: a corpus classifier on top learns which corpus a clip comes
    from, while the layers below learn to make that impossible.
    """
    return _ReverseGradient.apply(x, weight)


#: Names of the architectures :mod:`export.nets.train` builds.
ARCHITECTURES = {"cnn": CNN1D, "crnn": CRNN, "mlpnet": PooledMLP}
