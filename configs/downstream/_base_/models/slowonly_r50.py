# Slow-R50 (MMAction2's SlowOnly R50), the paper's default encoder.
# Weights come from the pretraining checkpoint (``load_from``), not ImageNet.
_base_ = 'mmaction::_base_/models/slowonly_r50.py'

model = dict(backbone=dict(pretrained=None))
