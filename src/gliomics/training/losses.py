"""Segmentation losses for tf.keras (tf-keras 2), safe under mixed precision.

All losses take ``y_true`` (0/1 masks) and ``y_pred`` (sigmoid probabilities,
*not* logits), of shape ``(batch, H, W, 1)`` or any ``(batch, ...)``. Both are
cast to float32 inside, so a model whose output is bfloat16 (mixed precision)
gets its loss computed in float32.

Reduction ("per_image"):

- ``per_image=False`` (default): the sums run over the whole batch flattened,
  the Keras formula of the Kota (2024) thesis (``K.flatten(y_true)``). With most slices
  empty this is the stable choice: an empty slice only contributes through
  its false positives.
- ``per_image=True``: one score per image, then the mean over the batch (each
  slice weighted equally; an empty slice predicted empty scores 1 thanks to
  the smooth term).

Formulas (sums over the reduced pixels; ``p`` prediction, ``g`` truth,
``s`` the smooth term):

- soft Dice ``D = (2 Σ p g + s) / (Σ p + Σ g + s)``; ``dice_loss = 1 − D``
  (``s = 1``).
- ``bce_dice_loss = w_bce · BCE + w_dice · (1 − D)`` with ``BCE`` the mean
  binary cross-entropy over all pixels (exactly
  ``tf.keras.losses.BinaryCrossentropy()``), ``w_bce = w_dice = 1`` (the
  thesis: BCE + Dice loss).
- focal Tversky (Abraham & Khan 2019, arXiv:1810.07842): Tversky index
  ``TI = (TP + s) / (TP + α FN + β FP + s)`` with ``TP = Σ p g``,
  ``FN = Σ (1 − p) g``, ``FP = Σ p (1 − g)``; loss ``(1 − TI)^γ``. Defaults
  ``α = 0.7`` (false negatives weigh more), ``β = 0.3``, ``γ = 0.75`` — the
  exponent as used in the authors' code (``K.pow(1 − TI, gamma)``), i.e.
  ``1/γ`` = 0.75 in the paper's notation. ``1 − TI`` is floored at 1e-7 so
  the gradient stays finite at a perfect prediction when ``γ < 1``. With
  ``α = β = 0.5``, ``γ = 1`` and ``s_tversky = s_dice / 2`` it equals
  ``dice_loss`` exactly.

Serialisation: the loss classes are registered with
``tf.keras.utils.register_keras_serializable(package="gliomics")`` and carry
their parameters in ``get_config``; the plain functions ``dice_loss`` and
``bce_dice_loss`` are registered too. ``custom_objects()`` returns every
loss and metric by name for ``tf.keras.models.load_model(...,
custom_objects=custom_objects())``.
"""

from __future__ import annotations

import tensorflow as tf

from gliomics.training import metrics

DEFAULT_SMOOTH = 1.0
_FLOOR = 1e-7

_register = tf.keras.utils.register_keras_serializable(package="gliomics")


def _prepare(y_true, y_pred):
    y_true = tf.cast(y_true, tf.float32)
    y_pred = tf.cast(y_pred, tf.float32)
    return y_true, y_pred


def _sum(x, per_image: bool):
    if per_image:
        rank = tf.rank(x)
        return tf.reduce_sum(x, axis=tf.range(1, rank))
    return tf.reduce_sum(x)


def soft_dice(y_true, y_pred, smooth: float = DEFAULT_SMOOTH, per_image: bool = False):
    """Soft Dice ``(2 Σpg + s) / (Σp + Σg + s)`` (float32; mean over images if per_image)."""
    y_true, y_pred = _prepare(y_true, y_pred)
    inter = _sum(y_true * y_pred, per_image)
    total = _sum(y_true, per_image) + _sum(y_pred, per_image)
    return tf.reduce_mean((2.0 * inter + smooth) / (total + smooth))


def binary_crossentropy(y_true, y_pred):
    """Mean pixel-wise binary cross-entropy, as ``tf.keras.losses.BinaryCrossentropy()``."""
    y_true, y_pred = _prepare(y_true, y_pred)
    return tf.reduce_mean(tf.keras.losses.binary_crossentropy(y_true, y_pred))


def tversky_index(y_true, y_pred, alpha: float = 0.7, beta: float = 0.3,
                  smooth: float = DEFAULT_SMOOTH, per_image: bool = False):
    """Tversky index ``(TP + s) / (TP + α FN + β FP + s)`` (mean over images if per_image)."""
    y_true, y_pred = _prepare(y_true, y_pred)
    tp = _sum(y_true * y_pred, per_image)
    fn = _sum(y_true * (1.0 - y_pred), per_image)
    fp = _sum((1.0 - y_true) * y_pred, per_image)
    return (tp + smooth) / (tp + alpha * fn + beta * fp + smooth)


@_register
def dice_loss(y_true, y_pred):
    """``1 − soft Dice`` over the batch (smooth 1)."""
    return 1.0 - soft_dice(y_true, y_pred)


@_register
def bce_dice_loss(y_true, y_pred):
    """The Kota (2024) thesis loss: ``BCE + (1 − soft Dice)`` (smooth 1, batch-global Dice)."""
    return binary_crossentropy(y_true, y_pred) + dice_loss(y_true, y_pred)


@_register
class DiceLoss(tf.keras.losses.Loss):
    """``1 − soft Dice``; see the module docstring for the formula."""

    def __init__(self, smooth: float = DEFAULT_SMOOTH, per_image: bool = False,
                 name: str = "dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)
        self.per_image = bool(per_image)

    def call(self, y_true, y_pred):
        return 1.0 - soft_dice(y_true, y_pred, self.smooth, self.per_image)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth, "per_image": self.per_image}


@_register
class BCEDiceLoss(tf.keras.losses.Loss):
    """``bce_weight · BCE + dice_weight · (1 − soft Dice)`` (the Kota (2024) thesis: both 1)."""

    def __init__(self, smooth: float = DEFAULT_SMOOTH, per_image: bool = False,
                 bce_weight: float = 1.0, dice_weight: float = 1.0,
                 name: str = "bce_dice_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.smooth = float(smooth)
        self.per_image = bool(per_image)
        self.bce_weight = float(bce_weight)
        self.dice_weight = float(dice_weight)

    def call(self, y_true, y_pred):
        bce = binary_crossentropy(y_true, y_pred)
        dice = 1.0 - soft_dice(y_true, y_pred, self.smooth, self.per_image)
        return self.bce_weight * bce + self.dice_weight * dice

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth, "per_image": self.per_image,
                "bce_weight": self.bce_weight, "dice_weight": self.dice_weight}


@_register
class FocalTverskyLoss(tf.keras.losses.Loss):
    """Focal Tversky loss ``(1 − TI)^γ`` (Abraham & Khan 2019); see the module docstring."""

    def __init__(self, alpha: float = 0.7, beta: float = 0.3, gamma: float = 0.75,
                 smooth: float = DEFAULT_SMOOTH, per_image: bool = False,
                 name: str = "focal_tversky_loss", **kwargs):
        super().__init__(name=name, **kwargs)
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.smooth = float(smooth)
        self.per_image = bool(per_image)

    def call(self, y_true, y_pred):
        ti = tversky_index(y_true, y_pred, self.alpha, self.beta, self.smooth, self.per_image)
        return tf.reduce_mean(tf.pow(tf.maximum(1.0 - ti, _FLOOR), self.gamma))

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta,
                "gamma": self.gamma, "smooth": self.smooth, "per_image": self.per_image}


def focal_tversky_loss(alpha: float = 0.7, beta: float = 0.3, gamma: float = 0.75,
                       **kwargs) -> FocalTverskyLoss:
    """A serialisable focal Tversky loss (``(y_true, y_pred) -> scalar``)."""
    return FocalTverskyLoss(alpha=alpha, beta=beta, gamma=gamma, **kwargs)


_LOSSES = {
    "dice": DiceLoss,
    "bce_dice": BCEDiceLoss,
    "focal_tversky": FocalTverskyLoss,
}
_ALIASES = {
    "dice_loss": "dice",
    "bce+dice": "bce_dice",
    "bce_dice_loss": "bce_dice",
    "focal_tversky_loss": "focal_tversky",
    "ftl": "focal_tversky",
}


def loss_names() -> list[str]:
    """The canonical names ``get_loss`` accepts (aliases aside)."""
    return sorted(_LOSSES)


def get_loss(name: str, **kwargs) -> tf.keras.losses.Loss:
    """Build a loss by name (``dice``, ``bce_dice``, ``focal_tversky``) with its kwargs.

    Names are case-insensitive; ``-`` and spaces count as ``_``; a few aliases
    (``bce+dice``, ``dice_loss``, ``bce_dice_loss``, ``focal_tversky_loss``,
    ``ftl``) are accepted. Unknown names or parameters raise ``ValueError``.
    """
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in _LOSSES:
        raise ValueError(
            f"unknown loss {name!r}; choose one of {', '.join(loss_names())}"
        )
    try:
        return _LOSSES[key](**kwargs)
    except TypeError as exc:
        raise ValueError(f"bad parameters for loss {key!r}: {exc}") from exc


def custom_objects() -> dict:
    """Every gliomics loss and Keras metric by name, for ``load_model(custom_objects=...)``."""
    objects = {
        "dice_loss": dice_loss,
        "bce_dice_loss": bce_dice_loss,
        "DiceLoss": DiceLoss,
        "BCEDiceLoss": BCEDiceLoss,
        "FocalTverskyLoss": FocalTverskyLoss,
    }
    objects.update({f"gliomics>{k}": v for k, v in list(objects.items())})
    objects.update(metrics.keras_metrics_by_name())
    return objects
