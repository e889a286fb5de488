"""kNN accuracy of the backbone's pooled features during pretraining."""
import time
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmengine.dist import broadcast_object_list, collect_results, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.runner import IterBasedTrainLoop
from torch import Tensor
from torch.utils.data import DataLoader

from mmbodvcl.functional.knn import (encode_clips, knn_class_scores,
                                     topk_accuracy)

DataLoaderCfg = Union[dict, DataLoader]


@HOOKS.register_module()
class KNNMonitorHook(Hook):
    """Log the weighted-kNN accuracy of the backbone every few epochs.

    For each named split, the backbone encodes a labelled ``train`` set (the
    kNN memory) and a ``val`` set with the model's own data preprocessor, in
    eval mode and without gradients; a clip's feature is the global average
    of the backbone output over T, H and W (tuple outputs pooled per part and
    concatenated), averaged over the clips of a video when the pipeline
    samples several. Each val video is classified by the cosine-weighted
    votes of its ``k`` nearest train videos (Wu et al., CVPR 2018). The
    results, ``{name}/top1`` and ``{name}/top5``, go to the message hub, the
    visualizer (TensorBoard, the JSON log ``vis_data/<timestamp>.json``) and
    the text log.

    Under distributed training every rank encodes its shard (use
    ``DefaultSampler``), the features are gathered with MMEngine's
    ``collect_results`` and rank 0 computes the accuracies, which every rank
    then receives.

    Args:
        splits: One dict per evaluation: ``name`` (the log prefix, e.g.
            ``'knn'``, ``'knn_static'``), ``train`` and ``val`` (dataloader
            configs as ``val_dataloader``, or built ``DataLoader`` s).
        interval: Evaluate every ``interval`` epochs (``by_epoch``) or
            training iterations, and after the last one.
        by_epoch: Count ``interval`` in epochs (``EpochBasedTrainLoop``) or
            iterations (``IterBasedTrainLoop``).
        k: Neighbours that vote.
        temperature: Vote weight ``exp(cosine / temperature)``.
        topk: Accuracies to log.
        collect_device: ``'gpu'`` gathers the features through the process
            group (``all_gather_object``; works with gloo on CPU and needs no
            shared file system), ``'cpu'`` through a temporary directory
            that every rank must see.
    """
    priority = 'LOW'

    def __init__(self,
                 splits: Sequence[dict],
                 interval: int = 10,
                 by_epoch: bool = True,
                 k: int = 20,
                 temperature: float = 0.07,
                 topk: Sequence[int] = (1, 5),
                 collect_device: str = 'gpu') -> None:
        if interval < 1 or k < 1 or temperature <= 0 or not topk or min(
                topk) < 1:
            raise ValueError(
                f'KNNMonitorHook needs interval >= 1, k >= 1, temperature > 0 '
                f'and topk values >= 1; got interval={interval!r}, k={k!r}, '
                f'temperature={temperature!r}, topk={topk!r}')
        if collect_device not in ('cpu', 'gpu'):
            raise ValueError(f"collect_device must be 'cpu' or 'gpu', got "
                             f'{collect_device!r}')
        self.splits = self._check_splits(splits)
        self.interval = interval
        self.by_epoch = by_epoch
        self.k = k
        self.temperature = temperature
        self.topk = tuple(topk)
        self.collect_device = collect_device
        self._loaders: Dict[str, Tuple[DataLoader, DataLoader]] = {}

    @staticmethod
    def _check_splits(splits: Sequence[dict]) -> List[dict]:
        if isinstance(splits, dict) or not splits:
            raise TypeError(f'splits must be a non-empty list of dict(name=, '
                            f'train=, val=), got {splits!r}')
        names = []
        for index, split in enumerate(splits):
            missing = {'name', 'train', 'val'} - set(split)
            if missing:
                raise KeyError(f'KNNMonitorHook splits[{index}] lacks '
                               f'{sorted(missing)}; each split needs name, '
                               f'train and val')
            names.append(split['name'])
        if len(set(names)) != len(names) or not all(
                isinstance(n, str) and n for n in names):
            raise ValueError(f'split names must be distinct non-empty '
                             f'strings, got {names}')
        return list(splits)

    def before_train(self, runner) -> None:
        """Build the dataloaders now, so a wrong path fails at once rather
        than after ``interval`` epochs."""
        if self.by_epoch and isinstance(runner.train_loop, IterBasedTrainLoop):
            raise ValueError(
                'KNNMonitorHook(by_epoch=True) never runs in an '
                'IterBasedTrainLoop (it has no epochs): set by_epoch=False '
                'to count interval in iterations')
        for split in self.splits:
            self._loaders[split['name']] = tuple(
                runner.build_dataloader(split[part], seed=runner.seed)
                for part in ('train', 'val'))

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and (self.every_n_epochs(runner, self.interval)
                              or self.is_last_train_epoch(runner)):
            self.evaluate(runner, step=runner.epoch + 1)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if not self.by_epoch and (self.every_n_train_iters(
                runner, self.interval) or self.is_last_train_iter(runner)):
            self.evaluate(runner, step=runner.iter + 1)

    def evaluate(self, runner, step: int) -> Dict[str, float]:
        """Encode every split, log and return ``{f'{name}/top{k}': acc}``."""
        if not self._loaders:
            self.before_train(runner)
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        start = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            metrics = {}
            for name, (train_loader, val_loader) in self._loaders.items():
                train = self._encode(model, train_loader)
                val = self._encode(model, val_loader)
                metrics.update(self._accuracies(name, train, val))
        finally:
            model.train(was_training)
        shared = [metrics]
        broadcast_object_list(shared)  # in place, from rank 0
        metrics = shared[0]
        for key, value in metrics.items():
            runner.message_hub.update_scalar(key, value)
        runner.visualizer.add_scalars(
            metrics, step=step, file_path=f'{runner.timestamp}.json')
        unit = 'epoch' if self.by_epoch else 'iter'
        runner.logger.info(
            f'kNN monitor ({unit} {step}, {time.perf_counter() - start:.1f} '
            's): ' + ', '.join(f'{k}: {v:.4f}' for k, v in metrics.items()))
        return metrics

    def _encode(self, model: torch.nn.Module,
                loader: DataLoader) -> Optional[Tuple[Tensor, Tensor]]:
        """Features and labels of the whole dataset on rank 0 (in dataset
        order), None on the other ranks."""
        backbone = getattr(model, 'backbone', None)
        if backbone is None:
            raise AttributeError(f'KNNMonitorHook encodes with model.backbone'
                                 f', which {type(model).__name__} lacks')
        results = []
        with torch.no_grad():
            for data in loader:
                data = model.data_preprocessor(data, False)
                features = encode_clips(backbone, data['inputs']).float().cpu()
                results.extend(
                    zip(features, map(_label_of, data['data_samples'])))
        results = collect_results(results, len(loader.dataset),
                                  self.collect_device)
        if get_rank() != 0:
            return None
        features, labels = zip(*results)
        return torch.stack(features), torch.tensor(labels)

    def _accuracies(self, name: str, train: Optional[Tuple[Tensor, Tensor]],
                    val: Optional[Tuple[Tensor, Tensor]]) -> Dict[str, float]:
        if train is None:  # not rank 0: receives the result by broadcast
            return {}
        num_classes = int(max(train[1].max(), val[1].max())) + 1
        scores = knn_class_scores(val[0], train[0], train[1], num_classes,
                                  self.k, self.temperature)
        accuracies = topk_accuracy(scores, val[1], self.topk)
        return {f'{name}/top{k}': acc for k, acc in accuracies.items()}


def _label_of(data_sample) -> int:
    label = data_sample.gt_label
    if label.numel() != 1:
        raise ValueError(f'KNNMonitorHook needs one class label per video, '
                         f'got gt_label {label.tolist()}')
    return int(label.item())
