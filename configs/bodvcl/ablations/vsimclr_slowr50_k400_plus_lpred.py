# Table 7 "+ L_pred": the plain V-CL baseline with the prediction loss
# L_pred added to its single-level objective (no decoupling, no bi-level).
_base_ = '../../baselines/vsimclr_slowr50_k400.py'

model = dict(with_pred_loss=True)
