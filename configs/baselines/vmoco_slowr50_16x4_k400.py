# V-MoCo with 16x4 sampling (16 frames at interval 4; Table 5), rho = 2,
# Slow-R50 keeping all 16 frames, Kinetics-400, 200 epochs.
# 16 GPUs x 8 videos.
_base_ = './vmoco_slowr50_k400.py'

train_pipeline = _base_.train_pipeline
train_pipeline[1].update(clip_len=16, frame_interval=4)
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
