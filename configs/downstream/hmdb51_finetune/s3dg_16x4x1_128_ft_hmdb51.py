# Finetuning S3D-G (16 frames every 4th, 128 px) on HMDB-51 (SPLIT=1..3):
# the concept paper's Table 1, Kinetics-400 pretraining.
_base_ = [
    '../_base_/models/s3dg.py',
    '../_base_/pipelines/video_16x4x1_128.py',
    '../_base_/datasets/hmdb51.py',
    '../_base_/schedules/finetune.py',
]

model = dict(cls_head=dict(num_classes=_base_.num_classes))
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_base_.val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_base_.test_pipeline))
