"""A model's losses as functions of its parameter tensors.

The bi-level step evaluates ``loss_lower`` and ``loss_upper`` at tensors
other than the parameters (``theta*``, finite-difference points) and
differentiates with respect to those tensors. ``torch.func.functional_call``
substitutes them for the parameters for the duration of one call, so the
model's parameters are never written.
"""
from typing import Callable, Dict, List, Sequence, Tuple

from torch import Tensor, nn
from torch.func import functional_call

LossAndLogs = Tuple[Tensor, Dict[str, Tensor]]


class _Bound(nn.Module):
    """Calls ``loss(**data)``, a method of ``model``, so that
    ``functional_call`` can substitute the model's tensors (keys
    ``model.<name>``)."""

    def __init__(self, model: nn.Module, loss: Callable[..., dict]) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, data: dict) -> Dict[str, Tensor]:
        return self.loss(**data)


def trainable_parameters(model: nn.Module) -> List[Tuple[str, nn.Parameter]]:
    """``(name, parameter)`` of every parameter that requires grad."""
    return [(name, param) for name, param in model.named_parameters()
            if param.requires_grad]


class StatelessLoss:
    """``model.<loss>(**data)`` as a function of the trainable parameters.

    Calling it with tensors standing in for the parameters (in the order of
    ``names``) returns ``model.parse_losses`` of the loss dict: ``(loss,
    log_vars)``.

    Args:
        model: an ``mmengine.model.BaseModel``.
        loss: one of its loss methods, e.g. ``model.loss_lower``.
        data: the preprocessed batch, passed as keyword arguments.
        names: the parameter names, as :func:`trainable_parameters` gives.
        keep_buffers: let the forward write the model's buffers (BatchNorm
            statistics, queues). Without it the writes go to throw-away
            copies, fresh for every call; the graph keeps referencing those
            copies, so no real buffer is written behind autograd's back.
    """

    def __init__(self, model: nn.Module, loss: Callable[..., dict],
                 data: dict, names: Sequence[str],
                 keep_buffers: bool) -> None:
        self.model = model
        self.bound = _Bound(model, loss)
        self.data = data
        self.keys = [f'model.{name}' for name in names]
        self.buffers = {} if keep_buffers else {
            f'model.{name}': buf
            for name, buf in model.named_buffers()
        }

    def __call__(self, tensors: Sequence[Tensor]) -> LossAndLogs:
        substitutes = dict(zip(self.keys, tensors))
        for key, buf in self.buffers.items():
            substitutes[key] = buf.clone()
        losses = functional_call(
            self.bound, substitutes, (self.data, ), tie_weights=False)
        return self.model.parse_losses(losses)
