"""Model configs written before the decoupling moved out of the neck.

Before the decoupler existed (development versions before 0.1.0) an
algorithm took ``decouple`` and ``with_pred_loss``, and ``KoopmanNeck``
took the Koopman options (``xi``, ``nu``, ...). Such configs still build:
:func:`upgrade_legacy_config` rewrites them into the ``decoupler`` form,
with a warning that shows the new form (CHANGELOG.md: the upgrade path).

"""
import copy
import logging
from typing import Optional, Tuple

from mmengine.logging import print_log

#: KoopmanNeck arguments that now belong to KoopmanDecoupler.
KOOPMAN_KEYS = ('xi', 'nu', 'estimator', 'ridge', 'split', 'rank_tol',
                'spectral_grad', 'spectral_eps')
LEGACY_KEYS = ('decouple', 'with_pred_loss')


def upgrade_legacy_config(
        neck: dict, decoupler: Optional[dict], with_lower_loss: bool,
        legacy: dict) -> Tuple[dict, Optional[dict], bool]:
    """``(neck, decoupler, with_lower_loss)`` with the legacy arguments
    (``legacy``: ``decouple`` / ``with_pred_loss`` given to the algorithm,
    Koopman options inside ``neck``) turned into a ``KoopmanDecoupler``."""
    unknown = set(legacy) - set(LEGACY_KEYS)
    if unknown:
        raise TypeError(f'unexpected model arguments {sorted(unknown)}')
    neck = copy.deepcopy(neck)
    koopman = {k: neck.pop(k) for k in KOOPMAN_KEYS if k in neck}
    if not legacy and not koopman:
        return neck, decoupler, with_lower_loss
    if decoupler is not None:
        raise ValueError(
            'model.decoupler cannot be combined with the legacy arguments '
            f'{sorted(legacy)} / neck options {sorted(koopman)}; move the '
            "Koopman options into decoupler=dict(type='KoopmanDecoupler', "
            '...)')
    with_lower_loss = with_lower_loss or legacy.get('with_pred_loss', False)
    if legacy.get('decouple', False):
        decoupler = dict(type='KoopmanDecoupler', **koopman)
    elif with_lower_loss:  # the "+ L_pred" ablation: unified loss + L_pred
        decoupler = dict(type='KoopmanDecoupler', contrast='unified',
                         **koopman)
    print_log(
        f'Deprecated model arguments {sorted(legacy)} / neck options '
        f'{sorted(koopman)}: this config now reads decoupler={decoupler}, '
        f'with_lower_loss={with_lower_loss}; write it that way '
        '(docs/architecture.md).',
        logger='current',
        level=logging.WARNING)
    return neck, decoupler, with_lower_loss
