# Fig. 12: weight nu = 1e-2 of the orthogonality term of L_pred (the
# default, ../vsimclr_slowr50_k400.py, uses 1e-4).
_base_ = '../vsimclr_slowr50_k400.py'

model = dict(decoupler=dict(nu=1e-2))
