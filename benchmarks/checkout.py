"""What the benchmarks borrow from the tests of this source checkout
(``tests/helpers.py``): small real videos and the pretraining pipeline read
from ``configs/``. Run the benchmarks from a checkout, as
``python benchmarks/<name>.py``."""
import os.path as osp
import sys

TESTS = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'tests')
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

from helpers import (make_video, make_video_dataset,  # noqa: E402
                     multiview_pretrain_pipeline)

__all__ = ['make_video', 'make_video_dataset', 'multiview_pretrain_pipeline']
