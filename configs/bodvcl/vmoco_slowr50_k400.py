# V-MoCo + BOD-VCL, Slow-R50 8x8, rho = 2, Kinetics-400, 200 epochs
# (paper sec. 5.1; Tables 2, 3, 5, 6).
# The baseline of the same name (encoder, data, optimiser, schedule, batch)
# plus BOD-VCL: the Koopman decoupler and the bi-level step.
_base_ = [
    '../baselines/vmoco_slowr50_k400.py',
    '../_base_/bodvcl.py',
]

model = dict(decoupler=_base_.koopman_decoupler)
optim_wrapper = _base_.bilevel_optim_wrapper
model_wrapper_cfg = _base_.bilevel_model_wrapper
