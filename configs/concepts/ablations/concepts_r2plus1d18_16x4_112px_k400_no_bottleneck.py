# Table 4, third row: alignment + local concept contrast, without the
# concept bottleneck (no sparsity, no reconstruction).
_base_ = '../concepts_r2plus1d18_16x4_112px_k400.py'

model = dict(head=dict(sparsity_loss=None, recon_loss=None))
