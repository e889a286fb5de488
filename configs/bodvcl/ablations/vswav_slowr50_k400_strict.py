# Table 10 "Strict": the lower level (L_pred) runs the backbone temporally
# local (centre temporal slice of every 3D kernel, temporal pooling stride
# 1), so L_pred's gradient reaches spatial parameters only.
_base_ = '../vswav_slowr50_k400.py'

model = dict(strict_lower=True)
