"""MMAction2's ``VideoDataset`` with an explicit policy for bad videos."""
import logging
from typing import Any

from mmaction.datasets import VideoDataset
from mmaction.registry import DATASETS
from mmengine.logging import print_log

from .transforms.loading import VideoReadError

ERROR_POLICIES = ('raise', 'resample')


@DATASETS.register_module()
class MultiViewVideoDataset(VideoDataset):
    """``VideoDataset`` (``path label`` annotation lines; the label is
    carried but pretraining ignores it) with a policy for videos that cannot
    give the clips asked for.

    The multi-view transforms raise :class:`VideoReadError` naming the file
    for a missing, unreadable or corrupt video and for one shorter than a
    clip (:class:`VideoTooShortError`). Other exceptions (bugs, bad
    configs) always propagate.

    * ``on_error='raise'`` (default): the error propagates and stops the run.
    * ``on_error='resample'`` (training only): a warning names the file and
      the reason, ``num_skipped`` counts the skips of this process (each
      dataloader worker keeps its own count, printed with every warning) and
      MMEngine's ``BaseDataset`` draws another video, giving up after
      ``max_refetch`` consecutive failures. A test-mode dataset always
      raises: evaluation must not change its sample set silently.

    Args:
        *args, **kwargs: As ``mmaction.datasets.VideoDataset``.
        on_error: ``'raise'`` or ``'resample'``.
    """

    def __init__(self, *args: Any, on_error: str = 'raise',
                 **kwargs: Any) -> None:
        if on_error not in ERROR_POLICIES:
            raise ValueError(f'MultiViewVideoDataset: on_error must be one '
                             f'of {ERROR_POLICIES}, got {on_error!r}.')
        self.on_error = on_error
        self.num_skipped = 0
        super().__init__(*args, **kwargs)

    def prepare_data(self, idx: int) -> Any:
        try:
            return super().prepare_data(idx)
        except VideoReadError as error:
            if self.on_error == 'raise' or self.test_mode:
                raise
            self.num_skipped += 1
            print_log(
                f'{error} Skipping it and sampling another video '
                f"(on_error='resample'; {self.num_skipped} skipped so far by "
                f'this process).',
                logger='current',
                level=logging.WARNING)
            return None
