# V-BYOL + BOD-VCL with rho = 4 views per video (Tables 3 and 5).
# The baseline of the same name (encoder, data, optimiser, schedule, batch)
# plus BOD-VCL: the Koopman decoupler and the bi-level step.
_base_ = [
    '../baselines/vbyol_slowr50_rho4_k400.py',
    '../_base_/bodvcl.py',
]

model = dict(decoupler=_base_.koopman_decoupler)
optim_wrapper = _base_.bilevel_optim_wrapper
model_wrapper_cfg = _base_.bilevel_model_wrapper
