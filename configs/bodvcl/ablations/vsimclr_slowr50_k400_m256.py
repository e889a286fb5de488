# Table 12: Koopman dimension M = 256 (the projection's output; the
# default, ../vsimclr_slowr50_k400.py, uses 128).
_base_ = '../vsimclr_slowr50_k400.py'

model = dict(neck=dict(out_channels=256))
