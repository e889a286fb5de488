# Nearest-neighbour video retrieval (docs/downstream.md): test only. Leaf
# configs add a model base (its backbone and preprocessing), a pipelines base
# (its test pipeline, sampled 10 times per video) and a dataset base (train
# split = gallery, test split = queries), and evaluate with
#     python tools/test.py CONFIG CHECKPOINT
# where CHECKPOINT holds the encoder under backbone.* (a pretraining
# checkpoint as saved, or tools/extract_backbone.py's output).
_base_ = 'mmaction::_base_/default_runtime.py'

custom_imports = dict(imports=['mmbodvcl'], allow_failed_imports=False)

load_from = 'checkpoints/pretrained_backbone.pth'
test_cfg = dict(type='TestLoop')
