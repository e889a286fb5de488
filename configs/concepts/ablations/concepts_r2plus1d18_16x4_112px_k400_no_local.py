# Table 4, second row (and Table 5's "w/o" column at 50 + 50 concepts):
# alignment + sparsity + reconstruction, no local concept contrast.
_base_ = '../concepts_r2plus1d18_16x4_112px_k400.py'

model = dict(local_contrast=None)
