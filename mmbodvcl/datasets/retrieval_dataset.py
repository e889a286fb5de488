"""Gallery and query videos in one test set, for retrieval metrics."""
from typing import Union

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
        lazy_init: As MMEngine's ``ConcatDataset``.
    """

    def __init__(self,
                 gallery: Union[dict, BaseDataset],
                 query: Union[dict, BaseDataset],
                 lazy_init: bool = False) -> None:
        super().__init__([gallery, query], lazy_init=lazy_init)

    def __getitem__(self, idx: int) -> dict:
        packed = super().__getitem__(idx)
        role = RETRIEVAL_ROLES[self._get_ori_dataset_idx(idx)[0]]
        data_sample = packed.get('data_samples') if isinstance(
            packed, dict) else None
        if data_sample is None:
            raise TypeError(
                f'RetrievalDataset: the {role} pipeline must end with '
                f'PackActionInputs (a dict with data_samples), got '
                f'{type(packed).__name__}')
        data_sample.set_metainfo(dict(retrieval_role=role))
        return packed
