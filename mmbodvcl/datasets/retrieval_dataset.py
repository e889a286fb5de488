"""Gallery and query videos in one test set, for retrieval metrics."""
import copy
from typing import List, Optional, Union

from mmaction.registry import DATASETS
from mmengine.dataset import BaseDataset, ConcatDataset

#: ``retrieval_role`` of the samples of each part, in dataset order.
RETRIEVAL_ROLES = ('gallery', 'query')


@DATASETS.register_module()
class RetrievalDataset(ConcatDataset):
    """The gallery set followed by the query set, each packed sample tagged.

    One test loop then encodes both (sharded across ranks like any test set)
    and the retrieval metric tells them apart by the ``retrieval_role``
    (``'gallery'`` or ``'query'``) this wrapper adds to every data sample's
    metainfo. The two sets may be of any MMAction2 dataset type whose
    pipeline ends with ``PackActionInputs``.

    Args:
        gallery: Dataset (config) searched, e.g. the train split.
        query: Dataset (config) whose videos query the gallery, e.g. the
            test split.
        pipeline: If given, the pipeline of both sets (given as configs,
            which are then also built in test mode): retrieval encodes the
            gallery and the queries alike.
        lazy_init: As MMEngine's ``ConcatDataset``.
    """

    def __init__(self,
                 gallery: Union[dict, BaseDataset],
                 query: Union[dict, BaseDataset],
                 pipeline: Optional[List[dict]] = None,
                 lazy_init: bool = False) -> None:
        datasets = [gallery, query]
        if pipeline is not None:
            if not all(isinstance(d, dict) for d in datasets):
                raise TypeError('RetrievalDataset: a shared pipeline needs '
                                'gallery and query as dataset configs')
            datasets = [
                dict(copy.deepcopy(d), pipeline=pipeline, test_mode=True)
                for d in datasets
            ]
        super().__init__(datasets, lazy_init=lazy_init)

    def __getitem__(self, idx: int) -> dict:
        packed = super().__getitem__(idx)
        role = RETRIEVAL_ROLES[self._get_ori_dataset_idx(idx)[0]]
        if not isinstance(packed, dict) or 'data_samples' not in packed:
            raise TypeError(
                f'RetrievalDataset: the {role} pipeline must end with '
                f'PackActionInputs (a dict with data_samples), got '
                f'{type(packed).__name__}')
        packed['data_samples'].set_metainfo(dict(retrieval_role=role))
        return packed
