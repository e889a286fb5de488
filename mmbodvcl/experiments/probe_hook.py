"""Per-semantic linear probes during Runner training on synthetic videos.

With ``configs/synthetic/`` the experiments run through MMEngine's Runner
(``tools/train.py``, ``tools/sweep.py``, ``make demo``); every ``interval``
iterations this hook probes independent evaluation clips through the model's
``probe_embeddings`` (:func:`~.end_to_end.probe_model`) and logs the
accuracy of each semantic from each embedding
(``probe/<backbone|unified|static|dynamic>/<semantic>``; for a Koopman split
also ``probe/static@<xi>/...`` and ``probe/dynamic@<xi>/...``). After the
last iteration it writes the probes (and the split's spectrum) to
``<work_dir>/synthetic_probe.json``, which the sweep and the demo read.
"""
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.fileio import dump
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmaction.registry import HOOKS
from mmbodvcl.datasets.synthetic import SyntheticVideoGenerator
from .end_to_end import probe_model
from .views import ViewPool


def logged_accuracies(record: dict) -> Dict[str, Dict[str, float]]:
    """``{embedding: {semantic: accuracy}}`` of a :func:`probe_model`
    record, the split's parts at each extra threshold named ``static@<xi>``
    and ``dynamic@<xi>`` (at its own, they are ``static`` and
    ``dynamic``)."""
    accuracies = dict(record['accuracies'])
    spectrum = record.get('spectrum', dict(by_xi={}))
    for xi, parts in spectrum['by_xi'].items():
        if xi != str(spectrum['xi']):
            accuracies[f'static@{xi}'] = parts['static']
            accuracies[f'dynamic@{xi}'] = parts['dynamic']
    return accuracies


@HOOKS.register_module()
class SyntheticProbeHook(Hook):
    """Log linear-probe accuracies of the four synthetic semantics.

    Args:
        interval: Probe every ``interval`` training iterations (and after
            the last one).
        num_samples: Evaluation clips (half train the probes).
        num_frames, size: Must match the training clips.
        seed: Seed of the evaluation clips (keep it apart from training).
        xis: Extra split thresholds to probe a Koopman split at; the
            decoupler's own always is.
    """
    priority = 'LOW'
    result_file = 'synthetic_probe.json'

    def __init__(self,
                 interval: int = 200,
                 num_samples: int = 512,
                 num_frames: int = 8,
                 size: int = 32,
                 seed: int = 100,
                 xis: Sequence[float] = ()) -> None:
        if interval < 1:
            raise ValueError(f'interval={interval!r} must be >= 1')
        self.interval = interval
        self.generator = SyntheticVideoGenerator(num_samples, 'iii',
                                                 num_frames=num_frames,
                                                 size=size, seed=seed)
        self.xis = tuple(xis)
        self._pool: Optional[ViewPool] = None

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs=None) -> None:
        last = runner.iter + 1 == runner.max_iters
        if not (self.every_n_train_iters(runner, self.interval) or last):
            return
        if self._pool is None:
            self._pool = ViewPool.render(self.generator, 1)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        record = probe_model(model, self._pool, self.xis)
        accuracies = logged_accuracies(record)
        for embedding, per_semantic in accuracies.items():
            for semantic, value in per_semantic.items():
                runner.message_hub.update_scalar(
                    f'probe/{embedding}/{semantic}', value)
        if last:
            dump(dict(iter=runner.iter + 1, **record),
                 osp.join(runner.work_dir, self.result_file), indent=2)
        runner.logger.info('probe ' + '; '.join(
            f'{embedding}: ' + ' '.join(f'{k}={v:.3f}'
                                        for k, v in per_semantic.items())
            for embedding, per_semantic in accuracies.items()))
