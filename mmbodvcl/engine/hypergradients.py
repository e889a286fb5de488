"""``HYPERGRADIENTS``: the hypergradient methods by their config names.

``BiLevelOptimWrapper(hypergrad=dict(type=<name>, **arguments))`` builds
one through :func:`build_hypergradient`. The methods themselves are pure
PyTorch classes in :mod:`mmbodvcl.functional.hypergrad`; a new one is a
class there plus one line here.
"""
import inspect
from typing import Optional, Union

from mmengine.registry import Registry

from mmbodvcl.functional.hypergrad import (AidCg, AidFd, AidMinres, AidNmn,
                                           FirstOrder, Hypergradient, ItdFd,
                                           ItdRmad)

HYPERGRADIENTS = Registry('hypergradient')
HYPERGRADIENTS.register_module('itd_rmad', module=ItdRmad)
HYPERGRADIENTS.register_module('itd_fd', module=ItdFd)
HYPERGRADIENTS.register_module('aid_fd', module=AidFd)
HYPERGRADIENTS.register_module('aid_nmn', module=AidNmn)
HYPERGRADIENTS.register_module('aid_cg', module=AidCg)
HYPERGRADIENTS.register_module('aid_minres', module=AidMinres)
HYPERGRADIENTS.register_module('first_order', module=FirstOrder)

#: The method of ``hypergrad`` configs without a ``type`` (docs/bilevel.md
#: has the measurements behind the choice).
DEFAULT_HYPERGRADIENT = 'itd_fd'


def build_hypergradient(
        cfg: Optional[Union[dict, Hypergradient]] = None) -> Hypergradient:
    """A hypergradient method built by :data:`HYPERGRADIENTS` from
    ``dict(type=<name>, **arguments)`` (``type`` defaults to
    :data:`DEFAULT_HYPERGRADIENT`; a registered name or a
    :class:`Hypergradient` subclass); an instance is returned as is.

    Raises:
        ValueError: naming an unknown ``type`` or argument, with the allowed
            values.
    """
    if isinstance(cfg, Hypergradient):
        return cfg
    cfg = dict(cfg or {})
    cfg.setdefault('type', DEFAULT_HYPERGRADIENT)
    method = cfg['type']
    cls = HYPERGRADIENTS.get(method) if isinstance(method, str) else method
    if not (isinstance(cls, type) and issubclass(cls, Hypergradient)):
        raise ValueError(f'hypergrad.type {method!r} is unknown; expected '
                         f'one of {sorted(HYPERGRADIENTS.module_dict)}')
    allowed = [
        name for name in inspect.signature(cls).parameters if name != 'self'
    ]
    unknown = sorted(set(cfg) - set(allowed) - {'type'})
    if unknown:
        raise ValueError(
            f'hypergrad key(s) {unknown} are not arguments of {method!r} '
            f'({cls.__name__}); expected some of {allowed}')
    return HYPERGRADIENTS.build(cfg)
