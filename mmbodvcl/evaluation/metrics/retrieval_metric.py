"""Recall at k of nearest-neighbour video retrieval."""
from typing import Dict, List, Optional, Sequence

import torch
from mmaction.registry import METRICS
from mmengine.evaluator import BaseMetric

from mmbodvcl.datasets.retrieval_dataset import RETRIEVAL_ROLES
from mmbodvcl.functional.knn import retrieval_recall


@METRICS.register_module()
class VideoRetrievalMetric(BaseMetric):
    """R@k of retrieving query videos' classes from a gallery by cosine
    similarity of their features.

    Reads each data sample's ``feature`` (set by ``VideoFeatureExtractor``),
    ``gt_label`` and ``retrieval_role`` (set by ``RetrievalDataset``). A
    query is a hit at ``k`` when any of its ``k`` nearest gallery videos has
    its class. Results: ``retrieval/R@1``, ``retrieval/R@5``, ...

    Args:
        topk: The k of each recall.
        collect_device: As MMEngine's ``BaseMetric``.
        prefix: Key prefix (default ``'retrieval'``).
    """
    default_prefix = 'retrieval'

    def __init__(self,
                 topk: Sequence[int] = (1, 5, 10, 20),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not topk or min(topk) < 1:
            raise ValueError(f'topk must hold values >= 1, got {topk!r}')
        self.topk = tuple(topk)

    def process(self, data_batch, data_samples: Sequence[dict]) -> None:
        for sample in data_samples:
            missing = {'feature', 'gt_label', 'retrieval_role'} - set(sample)
            if missing:
                raise KeyError(
                    f'VideoRetrievalMetric needs {sorted(missing)} in every '
                    f'data sample: use model VideoFeatureExtractor and '
                    f'dataset RetrievalDataset')
            if sample['gt_label'].numel() != 1:
                raise ValueError(f'VideoRetrievalMetric needs one class '
                                 f'label per video, got '
                                 f'{sample["gt_label"].tolist()}')
            self.results.append(
                dict(
                    feature=sample['feature'].float().cpu(),
                    label=int(sample['gt_label'].item()),
                    role=sample['retrieval_role']))

    def compute_metrics(self, results: List[dict]) -> Dict[str, float]:
        parts = {}
        for role in RETRIEVAL_ROLES:
            chosen = [result for result in results if result['role'] == role]
            if not chosen:
                raise ValueError(f'VideoRetrievalMetric: the test set has no '
                                 f'{role} video')
            parts[role] = (torch.stack([r['feature'] for r in chosen]),
                           torch.tensor([r['label'] for r in chosen]))
        recall = retrieval_recall(*parts['query'], *parts['gallery'],
                                  self.topk)
        return {f'R@{k}': value for k, value in recall.items()}
