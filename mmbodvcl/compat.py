"""Fixes for known breakages of the pinned OpenMMLab stack.

Imported first by ``import mmbodvcl`` (and so by ``custom_imports`` in every
config), before anything imports ``mmaction.models``. Each fix is narrow,
idempotent, and a no-op where the stack does not need it:

1. mmaction2 1.2.0's wheel lacks ``mmaction.models.localizers.drn``
   (upstream issue #2714), so ``import mmaction.models`` fails. We stand in a
   module whose ``DRN`` raises a clear error when built.
2. torch >= 2.6 loads checkpoints with ``weights_only=True``; mmengine 0.10.7
   checkpoints carry ``HistoryBuffer`` objects (whose statistics methods
   pickle as ``getattr(HistoryBuffer, 'min')``) and numpy scalars. We allow
   exactly those types, and a ``getattr`` that serves only those lookups,
   with ``torch.serialization.add_safe_globals`` instead of turning
   weights-only loading off, so a checkpoint that pickles an arbitrary
   callable is still refused.
3. mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device``, which
   raises on a CPU-only build. Where CUDA is absent we initialise the process
   group with gloo instead; on GPU machines nothing changes. The Runner then
   wraps the model in ``MMDistributedDataParallel`` with
   ``device_ids=[LOCAL_RANK]``, which torch refuses for a CPU model; we drop
   the device ids for models whose parameters are all on the CPU.
4. torch's ``SyncBatchNorm`` refuses CPU modules under DDP ("SyncBatchNorm
   layers only work with GPU modules"), so a config written for GPUs
   (``norm_cfg=dict(type='SyncBN')``) could not train with
   ``tools/dist_train.sh CONFIG 2`` on a CPU host. When a data-parallel
   wrapper receives a CPU model, its SyncBN layers become BatchNorm, with a
   warning naming them (:func:`revert_sync_batchnorm_on_cpu`).
"""
import functools
import importlib.util
import logging
import os
import pickle
import sys
import types
from typing import List

import numpy as np
import torch

_APPLIED = False


def _mmaction_has_drn() -> bool:
    # ``find_spec('mmaction.models.localizers.drn')`` would import
    # ``mmaction.models`` (the very import that fails), so look at the files.
    spec = importlib.util.find_spec('mmaction')
    if spec is None or not spec.submodule_search_locations:
        return True  # no mmaction: nothing to patch
    root = list(spec.submodule_search_locations)[0]
    return os.path.isdir(os.path.join(root, 'models', 'localizers', 'drn'))


def _stand_in_drn() -> None:
    if _mmaction_has_drn() or 'mmaction.models.localizers.drn' in sys.modules:
        return
    from mmaction.registry import MODELS

    class DRN:
        """Stand-in for the DRN localizer missing from the mmaction2 wheel."""

        def __init__(self, *args, **kwargs) -> None:
            raise ImportError(
                'DRN is unavailable in the installed mmaction2 1.2.0: its '
                'wheel ships without mmaction/models/localizers/drn '
                '(mmaction2 issue #2714). mmbodvcl stands in this module so '
                'that the rest of mmaction.models imports; install mmaction2 '
                'from source to use DRN.')

    package = types.ModuleType('mmaction.models.localizers.drn')
    package.__path__ = []  # mark as a package
    module = types.ModuleType('mmaction.models.localizers.drn.drn')
    DRN.__module__ = module.__name__
    module.DRN = DRN
    package.drn = module
    package.DRN = DRN
    sys.modules[package.__name__] = package
    sys.modules[module.__name__] = module
    MODELS.register_module(name='DRN', module=DRN, force=True)


def _history_buffer_getattr(owner: object, name: str) -> object:
    """``getattr`` restricted to what ``HistoryBuffer`` pickles need.

    A ``HistoryBuffer`` pickles its statistics methods, e.g.
    ``HistoryBuffer.min``, as ``getattr(HistoryBuffer, 'min')``. Allowing the
    builtin itself would let a checkpoint walk from any allowed object to
    ``os.system``, so only those lookups are served.
    """
    from mmengine.logging import HistoryBuffer

    # The defaults are registered only when a first buffer is created.
    statistics = {'min', 'max', 'current', 'mean'}
    statistics.update(HistoryBuffer._statistics_methods)
    if (owner is HistoryBuffer and isinstance(name, str)
            and not name.startswith('_') and name in statistics):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'mmbodvcl refused getattr({owner!r}, {name!r}) while loading a '
        'checkpoint with weights_only=True: only HistoryBuffer statistics '
        'methods (min, max, current, mean, ...) may be looked up.')


def checkpoint_safe_globals() -> List[object]:
    """Globals an MMEngine checkpoint needs beyond torch's weights-only set.

    Entries are objects or ``(object, 'module.name')`` pairs, as
    ``torch.serialization.add_safe_globals`` takes them.
    """
    from mmengine.logging import HistoryBuffer

    safe: List[object] = [
        HistoryBuffer, np.ndarray, np.dtype,
        (_history_buffer_getattr, 'builtins.getattr'),
        # numpy pickles an empty array's data as ``bytes()`` (an empty
        # HistoryBuffer); the bytes constructor runs no code.
        bytes,
    ]
    # numpy moved its internals to ``numpy._core`` in 2.0; pickles name
    # whichever module wrote them, so allow both spellings that exist.
    for core_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            core = importlib.import_module(core_name)
        except ImportError:
            continue
        safe += [core.scalar, core._reconstruct]
    # numpy >= 1.25 pickles dtypes as instances of ``numpy.dtypes.*DType``.
    dtype_classes = getattr(np, 'dtypes', None)
    if dtype_classes is not None:
        safe += [
            getattr(dtype_classes, name) for name in dir(dtype_classes)
            if name.endswith('DType')
        ]
    return safe


def _allow_mmengine_checkpoints() -> None:
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is not None:  # torch < 2.4 loads unrestricted anyway
        add_safe_globals(checkpoint_safe_globals())


def _init_dist_pytorch_cpu_aware(backend: str,
                                 init_backend: str = 'torch',
                                 **kwargs) -> None:
    """mmengine's ``_init_dist_pytorch`` with a gloo path for CPU-only
    hosts."""
    if torch.cuda.is_available():
        return _original_init_dist_pytorch(
            backend, init_backend=init_backend, **kwargs)
    import torch.distributed as torch_dist
    if backend != 'gloo':
        print(f'mmbodvcl: CUDA is unavailable, using the gloo backend '
              f'instead of {backend!r} for this CPU-only run.',
              file=sys.stderr)
    torch_dist.init_process_group(
        backend='gloo',
        rank=int(os.environ['RANK']),
        world_size=int(os.environ['WORLD_SIZE']),
        **kwargs)


_original_init_dist_pytorch = None


def _allow_cpu_distributed_launch() -> None:
    global _original_init_dist_pytorch
    from mmengine.dist import utils as dist_utils
    if dist_utils._init_dist_pytorch is _init_dist_pytorch_cpu_aware:
        return
    _original_init_dist_pytorch = dist_utils._init_dist_pytorch
    dist_utils._init_dist_pytorch = _init_dist_pytorch_cpu_aware


def revert_sync_batchnorm_on_cpu(module: torch.nn.Module) -> None:
    """Turn the SyncBatchNorm layers of a CPU-only ``module`` into BatchNorm
    (per-process statistics), in place, with a warning naming them.
    Models with any parameter off the CPU are left alone."""
    from mmengine.logging import print_log
    from mmengine.model import revert_sync_batchnorm
    if any(p.device.type != 'cpu' for p in module.parameters()):
        return
    synced = [
        name for name, child in module.named_modules()
        if isinstance(child, torch.nn.SyncBatchNorm)
    ]
    if not synced:
        return
    print_log(
        f'mmbodvcl: {len(synced)} SyncBatchNorm layers (e.g. '
        f'{", ".join(synced[:3])}), from norm_cfg=dict(type=\'SyncBN\') in '
        'the config, cannot run on a CPU-only host; they train as '
        'BatchNorm with per-process statistics. Set the norm_cfg of the '
        "backbone / neck to dict(type='BN3d') / dict(type='BN1d') to "
        'silence this.',
        logger='current',
        level=logging.WARNING)
    revert_sync_batchnorm(module)


def _wrap_cpu_models_without_device_ids() -> None:
    from mmengine.model import MMDistributedDataParallel
    original_init = MMDistributedDataParallel.__init__
    if getattr(original_init, '_mmbodvcl_cpu_aware', False):
        return

    @functools.wraps(original_init)
    def init_cpu_aware(self, module: torch.nn.Module, *args,
                       **kwargs) -> None:
        # torch's DDP raises for device ids on a CPU module; the Runner
        # passes them unconditionally. GPU models keep theirs.
        if all(p.device.type == 'cpu' for p in module.parameters()):
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
            revert_sync_batchnorm_on_cpu(module)
        original_init(self, module, *args, **kwargs)

    init_cpu_aware._mmbodvcl_cpu_aware = True
    MMDistributedDataParallel.__init__ = init_cpu_aware


def apply() -> None:
    """Apply every fix once; later calls do nothing."""
    global _APPLIED
    if _APPLIED:
        return
    _stand_in_drn()
    _allow_mmengine_checkpoints()
    _allow_cpu_distributed_launch()
    _wrap_cpu_models_without_device_ids()
    _APPLIED = True
