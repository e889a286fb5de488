# Fig. 10: V-SimCLR + BOD-VCL with the itd_rmad hypergradient (the default,
# ../vsimclr_slowr50_k400.py, uses itd_fd).
_base_ = '../vsimclr_slowr50_k400.py'

optim_wrapper = dict(hypergrad=dict(type='itd_rmad'))
