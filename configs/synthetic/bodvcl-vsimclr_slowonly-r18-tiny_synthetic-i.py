# V-SimCLR + BOD-VCL on synthetic scenario (i): L_A + L_M on the Koopman split
# (decouple=True), bi-level step (lower: L_pred, upper: L_A + L_M).
_base_ = ['_base_/synthetic_pretrain.py']

model = dict(decouple=True)
optim_wrapper = dict(
    _delete_=True,
    type='BiLevelOptimWrapper',
    constructor='BiLevelOptimWrapperConstructor',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
    hypergrad=dict(type='aid_fd'))
