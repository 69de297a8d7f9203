"""Training losses, each returning a :class:`LossOutput`: the mean per real target token and the summed NLL.

``label_smoothed_cross_entropy`` trains the Transformer. CTC trains SandGlass: :func:`ctc_loss` on
log-probabilities is the reference; :func:`ctc_loss_from_logits` and :func:`ctc_loss_from_features` are the fast
paths, tested against it.
"""

from sandglass.loss.cross_entropy import label_smoothed_cross_entropy
from sandglass.loss.ctc import ctc_loss
from sandglass.loss.fused_ctc import ctc_loss_from_features, ctc_loss_from_logits
from sandglass.loss.output import LossOutput

__all__ = [
    "LossOutput",
    "ctc_loss",
    "ctc_loss_from_features",
    "ctc_loss_from_logits",
    "label_smoothed_cross_entropy",
]
