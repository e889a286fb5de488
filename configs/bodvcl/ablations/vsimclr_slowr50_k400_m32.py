# Table 12: Koopman dimension M = 32 (the projection's output; the
# default, ../vsimclr_slowr50_k400.py, uses 128). V-SimCLR's head takes any
# size; V-MoCo and V-SwAV would also need model.head.embed_dim=M, V-BYOL
# model.head.in_channels=M and model.head.out_channels=M.
_base_ = '../vsimclr_slowr50_k400.py'

model = dict(neck=dict(out_channels=32))
