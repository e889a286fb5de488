# Table 7 "+ L_pred": the plain V-CL baseline with the prediction loss
# L_pred added to its single-level objective (one loss on the unified
# embedding, no decoupling, no bi-level step).
_base_ = [
    '../../baselines/vbyol_slowr50_k400.py',
    '../../_base_/bodvcl.py',
]

model = dict(
    decoupler=dict(_base_.koopman_decoupler, contrast='unified'),
    with_lower_loss=True)
