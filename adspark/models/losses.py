"""The reconstruction loss the autoencoder and the GAN train on, one value per row.

A training sample of a nightly table holds the anomalies the job is looking
for, a third of the rows on some tables. Under the mean squared error every
row pulls on the weights in proportion to its error, so the rows the network
reconstructs worst, the anomalies, pull hardest, and over the epochs the
network learns them too. `welsch` is the Welsch (correntropy) M-estimator of
each row's mean squared error e:

    c * (1 - exp(-e / c)),  c = WELSCH_SCALE * the batch's median e (held constant)

It is e for the rows the network reconstructs well, and flattens towards c for
the rows it does not: a row's pull on the weights is exp(-e / c) of what the
squared error gives it, 37% at the median error and 5% at three times it.
Because c follows the batch's median, the loss needs no scale of its own as
the error falls over the epochs. Alone (`model.loss: welsch`) it helps the
tables with a third of their rows anomalous and costs those with few, whose
normal rows' spread the squared error learns better; the autoencoder's default,
`mse+welsch`, trains one network with each (bench/README.md, "The training loss").
"""

from __future__ import annotations

from typing import Any, cast

from adspark.config import ModelLoss, RowLoss
from adspark.models.base import import_keras

WELSCH_SCALE = 1.0  # c in batch-median row errors
_TINY = 1e-12  # keeps c positive on a batch the network reconstructs exactly


def network_losses(loss: ModelLoss) -> tuple[RowLoss, ...]:
    """The loss of each network a `model.loss` value trains: ("mse",), ("welsch",) or ("mse", "welsch")."""
    return tuple(cast(RowLoss, part) for part in loss.split("+"))


def welsch(row_error: Any) -> Any:
    """Each row's Welsch loss from its mean squared reconstruction error (a tensor of shape (rows,))."""
    ops = import_keras().ops
    c = ops.stop_gradient(WELSCH_SCALE * ops.quantile(row_error, 0.5)) + _TINY
    return c * (1.0 - ops.exp(-row_error / c))


def batch_loss(kind: RowLoss, squared_error: Any) -> Any:
    """One batch's loss from its squared errors (rows x features), for a family with a training step of its own."""
    ops = import_keras().ops
    if kind == "mse":
        return ops.mean(squared_error)  # one reduction over every cell: the weights "mse" has always trained
    return ops.mean(welsch(ops.mean(squared_error, axis=-1)))


def keras_loss(kind: RowLoss) -> Any:
    """The loss for Keras' `compile`: its own "mse", or each row's `welsch` loss (Keras averages the rows)."""
    if kind == "mse":
        return "mse"
    ops = import_keras().ops

    def welsch_rows(y_true: Any, y_pred: Any) -> Any:
        return welsch(ops.mean(ops.square(y_true - y_pred), axis=-1))

    return welsch_rows
