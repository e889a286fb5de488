# Table 11: static threshold xi = 0.01 (|lambda - 1| < xi is static; the
# default, ../vsimclr_slowr50_k400.py, uses 0.1).
_base_ = '../vsimclr_slowr50_k400.py'

model = dict(decoupler=dict(xi=0.01))
