from .hypergrad import (HYPERGRAD_METHODS, HypergradResult,  # noqa: F401
                        bilevel_hypergradient)
from .contrastive import (all_gather_no_grad, all_gather_with_grad,  # noqa
                          batch_shuffle, batch_unshuffle, byol_loss, info_nce,
                          multi_view_info_nce, queue_info_nce, sinkhorn_knopp,
                          swapped_prediction_loss)
