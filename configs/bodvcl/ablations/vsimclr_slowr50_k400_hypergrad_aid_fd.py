# Fig. 10 / the paper's default: V-SimCLR + BOD-VCL with the aid_fd
# hypergradient (DARTS' central difference at theta*, 4 passes; our default,
# ../vsimclr_slowr50_k400.py, uses itd_fd).
_base_ = '../vsimclr_slowr50_k400.py'

optim_wrapper = dict(hypergrad=dict(type='aid_fd'))
