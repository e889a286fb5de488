from . import transforms  # noqa: F401
from .video_dataset import MultiViewVideoDataset  # noqa: F401
from .synthetic import SyntheticVideoDataset  # noqa: F401
from .retrieval_dataset import RetrievalDataset  # noqa: F401
