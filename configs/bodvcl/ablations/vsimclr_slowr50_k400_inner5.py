# Table 9: 5 lower-level (inner-loop) steps on L_pred per iteration
# (the default, ../vsimclr_slowr50_k400.py, takes 1).
_base_ = '../vsimclr_slowr50_k400.py'

optim_wrapper = dict(hypergrad=dict(inner_steps=5))
