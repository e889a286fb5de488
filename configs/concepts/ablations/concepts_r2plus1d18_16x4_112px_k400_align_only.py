# Table 4, first row: the decoupled concept alignment alone (no sparsity,
# no reconstruction, no local concept contrast); otherwise the R(2+1)D-18
# Kinetics-400 config.
_base_ = '../concepts_r2plus1d18_16x4_112px_k400.py'

model = dict(
    head=dict(sparsity_loss=None, recon_loss=None), local_contrast=None)
