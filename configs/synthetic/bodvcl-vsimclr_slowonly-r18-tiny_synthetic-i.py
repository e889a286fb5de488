# V-SimCLR + BOD-VCL on synthetic scenario (i): L_A + L_M on the Koopman
# split, bi-level step (lower: L_pred, upper: L_A + L_M) with the project's
# default hypergradient (configs/_base_/bodvcl.py); the paper's AID-FD via
# --cfg-options optim_wrapper.hypergrad.type=aid_fd.
_base_ = ['_base_/synthetic_pretrain.py']

model = dict(
    decoupler=dict(
        type='KoopmanDecoupler', xi=0.1, nu=1e-4, estimator='cross_view'))
optim_wrapper = dict(
    _delete_=True,
    type='BiLevelOptimWrapper',
    constructor='BiLevelOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
    hypergrad=dict(type='itd_fd', inner_steps=1, lower_lr=1e-4),
    clip_grad=dict(max_norm=5.0))
