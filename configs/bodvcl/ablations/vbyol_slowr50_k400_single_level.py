# Table 8 "V-CL*": BOD-VCL's decoupled losses L_A + L_M and L_pred minimised
# together in one single-level step instead of the bi-level optimisation.
_base_ = [
    '../../baselines/vbyol_slowr50_k400.py',
    '../../_base_/bodvcl.py',
]

model = dict(decoupler=_base_.koopman_decoupler, with_lower_loss=True)
