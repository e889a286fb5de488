"""Run a spatial augmentation sub-pipeline once per view."""
from typing import Callable, Dict, List, Union

import numpy as np
from mmcv.transforms import BaseTransform, Compose
from mmaction.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MultiViewAugment(BaseTransform):
    """Apply ``transforms`` to each view's frames with its own random draw.

    The multi-view counterpart of MMPretrain's ``MultiView``: the decoded
    frames (``num_clips`` views of ``clip_len`` frames, view-major, as written
    by :class:`MultiViewSampleFrames` and :class:`MultiViewDecordDecode`) are
    split into views, the sub-pipeline runs once on each view (MMAction2's
    clip transforms draw one crop/flip/jitter per call, so all frames of a
    view share it), and the frames are joined again in view order.

    Keys that the sub-pipeline adds (``crop_bbox``, ``flip``, ...) are kept
    per view in ``view_meta`` (list of dicts, one per view).

    Required keys: ``imgs``, ``num_clips``, ``clip_len``, ``frame_inds``.
    Modified keys: ``imgs`` (``num_clips * clip_len`` frames of one common
    shape), ``img_shape``. Added keys: ``view_meta``.

    Args:
        transforms: The per-view sub-pipeline (configs or callables), e.g.
            ``RandomResizedCrop``, ``Resize``, ``Flip``, colour transforms.
            It must end at one fixed size (``Resize(keep_ratio=False)``).
            Nested wrappers from ``mmcv.transforms`` (``RandomApply``, ...)
            resolve their inner types in the default scope, so configs set
            ``default_scope='mmaction'`` as MMAction2's do.
    """

    def __init__(self, transforms: List[Union[Dict, Callable]]) -> None:
        self.pipeline = Compose([
            TRANSFORMS.build(t) if isinstance(t, dict) else t
            for t in transforms
        ])

    def transform(self, results: Dict) -> Dict:
        imgs = results['imgs']
        num_views, clip_len = results['num_clips'], results['clip_len']
        if len(imgs) != num_views * clip_len:
            raise ValueError(
                f'MultiViewAugment: video {results.get("filename")!r} has '
                f'{len(imgs)} decoded frames, expected num_clips * clip_len '
                f'= {num_views} * {clip_len}.')
        frame_inds = np.asarray(results['frame_inds']).reshape(
            num_views, clip_len)

        views = []
        for index in range(num_views):
            view = dict(results)
            view.update(
                imgs=imgs[index * clip_len:(index + 1) * clip_len],
                frame_inds=frame_inds[index],
                num_clips=1)
            view = self.pipeline(view)
            if view is None:
                raise ValueError('MultiViewAugment: the per-view pipeline '
                                 'returned None; it must not filter views.')
            views.append(view)

        shapes = {img.shape for view in views for img in view['imgs']}
        if len(shapes) != 1:
            raise ValueError(
                f'MultiViewAugment: views of video '
                f'{results.get("filename")!r} ended with frame shapes '
                f'{sorted(shapes)}; end the per-view pipeline with '
                f'Resize(scale=(W, H), keep_ratio=False).')
        results['view_meta'] = [{
            key: value
            for key, value in view.items() if key not in results
        } for view in views]
        results['imgs'] = [img for view in views for img in view['imgs']]
        results['img_shape'] = views[0]['img_shape']
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(transforms={self.pipeline})'
