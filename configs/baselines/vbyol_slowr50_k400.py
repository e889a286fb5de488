# V-BYOL, the plain V-CL baseline of [1] (Tables 1-3, 5-7, 10): Slow-R50 8x8,
# rho = 2, Kinetics-400, 200 epochs, 16 GPUs x 8 videos. One loss on the
# unified embedding Z = mean_t z_t and a single-level optimiser step;
# configs/bodvcl/vbyol_slowr50_k400.py adds BOD-VCL to it.
_base_ = [
    '../_base_/models/vbyol_slowr50.py',
    '../_base_/datasets/k400_multiview_8x8.py',
    '../_base_/schedules/lars_200e.py',
    '../_base_/default_runtime.py',
]

# [1]'s BYOL recipe: half of SimCLR's learning rate at rho = 2
optim_wrapper = dict(optimizer=dict(lr=1.2))
