"""The BOD-VCL pretraining pipeline as a config list."""
from typing import Dict, List


def multiview_pretrain_pipeline(num_views: int = 2,
                                clip_len: int = 8,
                                frame_interval: int = 8,
                                size: int = 224) -> List[Dict]:
    """Transforms (config dicts) of the pretraining data path.

    One decode of ``num_views`` clips at independent random positions, then
    per view: random resized crop (area (0.2, 0.766), aspect (3/4, 4/3)),
    resize to ``size`` x ``size``, horizontal flip (p = 0.5), colour jitter
    0.6/0.6/0.6/0.15 (p = 0.8), grayscale (p = 0.2), each drawn once per
    view and applied to all its frames; then MMAction2's
    ``FormatShape('NCTHW')`` and :class:`PackMultiViewInputs`. Use with
    :class:`MultiViewVideoDataset` and ``MultiViewDataPreprocessor``.
    """
    per_view = [
        dict(
            type='RandomResizedCrop',
            area_range=(0.2, 0.766),
            aspect_ratio_range=(3 / 4, 4 / 3)),
        dict(type='Resize', scale=(size, size), keep_ratio=False),
        dict(type='Flip', flip_ratio=0.5),
        dict(
            type='RandomApply',
            transforms=[
                dict(
                    type='VideoColorJitter',
                    brightness=0.6,
                    contrast=0.6,
                    saturation=0.6,
                    hue=0.15)
            ],
            prob=0.8),
        dict(type='VideoRandomGrayscale', prob=0.2),
    ]
    return [
        dict(type='MultiViewDecordInit'),
        dict(
            type='MultiViewSampleFrames',
            clip_len=clip_len,
            frame_interval=frame_interval,
            num_views=num_views),
        dict(type='MultiViewDecordDecode'),
        dict(type='MultiViewAugment', transforms=per_view),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackMultiViewInputs'),
    ]
