# Plain V-CL baseline of the BOD-VCL config of the same name
# (the "[1]" / "†" rows of Tables 3-5): one loss on the unified embedding
# and a plain single-level optimiser step; everything else as BOD-VCL.
_base_ = '../bodvcl/vbyol_s3dg_16x4_112px_rho4_k400.py'

model = dict(decouple=False)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
# Single level: MMEngine's own DDP wrapper (the BOD-VCL base names the
# bi-level one); AfterOptimStepHook runs the momentum / prototype updates.
model_wrapper_cfg = dict(type='MMDistributedDataParallel')
