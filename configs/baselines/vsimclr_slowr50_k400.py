# V-SimCLR, the plain V-CL baseline of [1] (Tables 1-3, 5-7, 10), Slow-R50 8x8,
# rho = 2, Kinetics-400, 200 epochs: the BOD-VCL config without what BOD-VCL
# adds, i.e. one loss on the unified embedding Z = mean_t z_t and a plain
# single-level optimiser step (same optimiser, schedule, data, encoder).
_base_ = '../bodvcl/vsimclr_slowr50_k400.py'

model = dict(decouple=False)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
# Single level: MMEngine's own DDP wrapper (the BOD-VCL base names the
# bi-level one); AfterOptimStepHook runs the momentum / prototype updates.
model_wrapper_cfg = dict(type='MMDistributedDataParallel')
