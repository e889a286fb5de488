"""Linear probes of frozen features, one per binary semantic."""
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmbodvcl.datasets.synthetic import SEMANTICS


def split_train_test(num_samples: int,
                     train_fraction: float = 0.5) -> Tuple[Tensor, Tensor]:
    """Fixed first/second split of ``num_samples`` evaluation clips (their
    order is already random)."""
    cut = int(round(num_samples * train_fraction))
    if not 0 < cut < num_samples:
        raise ValueError(f'cannot split {num_samples} samples with '
                         f'train_fraction={train_fraction}')
    index = torch.arange(num_samples)
    return index[:cut], index[cut:]


def linear_probe_accuracy(features: Tensor,
                          labels: Tensor,
                          train_index: Tensor,
                          test_index: Tensor,
                          weight_decay: float = 1e-3,
                          max_iter: int = 100) -> Tensor:
    """Fit one logistic regression per binary label on the training rows and
    return its accuracy on the test rows.

    Features are standardised with training statistics; the fit is
    full-batch L-BFGS in fp32 and so deterministic.

    Args:
        features: ``(N, D)``, any float dtype.
        labels: ``(N, S)`` in {0, 1}.
        train_index, test_index: Row indices.
        weight_decay: L2 penalty on the weights.
        max_iter: L-BFGS iterations.

    Returns:
        ``(S,)`` test accuracies in [0, 1].
    """
    if features.ndim != 2 or labels.ndim != 2 or len(features) != len(
            labels):
        raise ValueError(f'need features (N, D) and labels (N, S), got '
                         f'{tuple(features.shape)} and {tuple(labels.shape)}')
    features = features.detach().float()
    if not torch.isfinite(features).all():
        raise ValueError('features given to the linear probe contain NaN or '
                         'Inf')
    train_x = features[train_index]
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-6)
    train_x = (train_x - mean) / std
    test_x = (features[test_index] - mean) / std
    train_y = labels[train_index].float()
    weight = torch.zeros(features.shape[1], labels.shape[1],
                         requires_grad=True)
    bias = torch.zeros(labels.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias],
                                  max_iter=max_iter,
                                  line_search_fn='strong_wolfe')

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(
            train_x @ weight + bias, train_y) + weight_decay * weight.square(
            ).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        predicted = (test_x @ weight + bias) > 0
        return (predicted == labels[test_index].bool()).float().mean(0)


def probe_accuracies(features: Tensor, labels: Tensor) -> Dict[str, float]:
    """Test accuracy of one linear probe per semantic, trained on the first
    part of the rows (:func:`split_train_test`): ``{semantic: accuracy}``."""
    train, test = split_train_test(len(features))
    accuracies = linear_probe_accuracy(features, labels, train, test)
    return dict(zip(SEMANTICS, accuracies.tolist()))
