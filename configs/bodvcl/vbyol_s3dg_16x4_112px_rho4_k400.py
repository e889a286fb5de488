# V-BYOL + BOD-VCL on S3D-G (Table 3).
# The baseline of the same name (encoder, data, optimiser, schedule, batch)
# plus BOD-VCL: the Koopman decoupler and the bi-level step.
_base_ = [
    '../baselines/vbyol_s3dg_16x4_112px_rho4_k400.py',
    '../_base_/bodvcl.py',
]

model = dict(decoupler=_base_.koopman_decoupler)
optim_wrapper = _base_.bilevel_optim_wrapper
model_wrapper_cfg = _base_.bilevel_model_wrapper
