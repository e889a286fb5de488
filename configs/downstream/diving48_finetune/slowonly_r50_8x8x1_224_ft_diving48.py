# Finetuning Slow-R50 (R3D-50) 8x8 on Diving-48.
_base_ = [
    '../_base_/models/slowonly_r50.py',
    '../_base_/pipelines/video_8x8x1_224.py',
    '../_base_/datasets/diving48.py',
    '../_base_/schedules/finetune.py',
]

model = dict(cls_head=dict(num_classes=_base_.num_classes))
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_base_.val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_base_.test_pipeline))
