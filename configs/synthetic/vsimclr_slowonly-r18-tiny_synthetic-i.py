# Plain V-SimCLR (unified InfoNCE on Z) on synthetic scenario (i).
_base_ = ['_base_/synthetic_pretrain.py']
