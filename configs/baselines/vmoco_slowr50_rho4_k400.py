# V-MoCo with rho = 4 views per video (Tables 3 and 5), Slow-R50 8x8,
# Kinetics-400, 200 epochs. 16 GPUs x 8 videos.
_base_ = './vmoco_slowr50_k400.py'

train_pipeline = _base_.train_pipeline
train_pipeline[1].update(num_views=4)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
