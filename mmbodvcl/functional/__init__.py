from .hypergrad import (AidCg, AidFd, AidNmn, BilevelProblem,  # noqa: F401
                        FirstOrder, HypergradResult, Hypergradient, ItdFd,
                        ItdRmad)
from .concepts import (ATTENTION_NORMS, concept_alignment_loss,  # noqa
                       concept_cross_attention, concept_scores,
                       concept_sparsity, local_concept_contrast,
                       negative_entropy, reconstruction_loss,
                       sinkhorn_codes, top_k_mask, valid_concepts)
from .contrastive import (all_gather_no_grad, all_gather_with_grad,  # noqa
                          batch_shuffle, batch_unshuffle, byol_loss, info_nce,
                          multi_view_info_nce, queue_info_nce, sinkhorn_knopp,
                          swapped_prediction_loss)
from .knn import (as_clip_batch, encode_clips, knn_class_scores,  # noqa
                  pool_backbone_output, retrieval_recall, topk_accuracy)
from .koopman import (ESTIMATORS, SPECTRAL_GRADS, SPLITS,  # noqa: F401
                      KoopmanPredictionLoss, KoopmanSplit, ReducedDMD,
                      apply_static_operator, check_features, check_options,
                      full_koopman_split, koopman_prediction_loss,
                      koopman_split, reduced_dmd,
                      reduced_static_operator)
