"""Pack the views of one video for the multi-view data preprocessor."""
from typing import Dict, Sequence

import numpy as np
from mmaction.datasets.transforms import PackActionInputs
from mmaction.registry import TRANSFORMS


@TRANSFORMS.register_module()
class PackMultiViewInputs(PackActionInputs):
    """MMAction2's ``PackActionInputs`` for ``num_clips`` views of a video.

    Expects MMAction2's ``FormatShape(input_format='NCTHW')`` before it and
    checks its result, so that a missing or misconfigured step fails here
    with the expected shape instead of deep in the model.

    Packed: ``inputs`` uint8 ``Tensor(V, 3, T, H, W)``; ``data_samples``
    an ``ActionDataSample`` with the label (unused by pretraining) and the
    ``meta_keys``; ``frame_inds`` is stored as ``(V, T)``.

    Args:
        meta_keys: Keys copied into the data sample's metainfo.
        algorithm_keys: Keys set as data fields (see ``PackActionInputs``).
    """

    def __init__(self,
                 meta_keys: Sequence[str] = ('filename', 'img_shape',
                                             'num_clips', 'clip_len',
                                             'frame_interval', 'frame_inds',
                                             'view_meta'),
                 algorithm_keys: Sequence[str] = ()) -> None:
        super().__init__(meta_keys=meta_keys, algorithm_keys=algorithm_keys)

    def transform(self, results: Dict) -> Dict:
        imgs = results.get('imgs')
        num_views, clip_len = results['num_clips'], results['clip_len']
        shape = getattr(imgs, 'shape', None)
        if shape is None or len(shape) != 5 or shape[0] != num_views \
                or shape[1] != 3 or shape[2] != clip_len:
            raise ValueError(
                f'PackMultiViewInputs: video {results.get("filename")!r}: '
                f'expected imgs of shape (V={num_views}, 3, T={clip_len}, '
                f'H, W) from FormatShape(input_format="NCTHW"), got '
                f'{shape if shape is not None else type(imgs).__name__}.')
        if 'frame_inds' in results:
            results['frame_inds'] = np.asarray(results['frame_inds']).reshape(
                num_views, clip_len)
        return super().transform(results)
