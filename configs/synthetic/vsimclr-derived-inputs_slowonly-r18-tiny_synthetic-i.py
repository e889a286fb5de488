# V-SimCLR decoupled by input on synthetic scenario (i): the paper's
# two-stream experiment (Corollary 1) with the real components. One shared
# encoder sees a frame of the clip repeated over time (part `static`) and
# the differences of adjacent grey frames (part `dynamic`, colour-blind like
# optical flow); each part has its own InfoNCE head. Everything else as
# _base_/synthetic_pretrain.py (plain V-SimCLR).
_base_ = ['_base_/synthetic_pretrain.py']

model = dict(
    decoupler=dict(
        type='DerivedInputDecoupler',
        static_frame='random',
        grayscale_difference=True))
