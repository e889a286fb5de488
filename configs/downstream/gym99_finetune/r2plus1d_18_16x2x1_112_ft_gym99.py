# Table 4: finetuning R(2+1)D-18 on FineGym Gym99 (SEVERE setup).
_base_ = [
    '../_base_/models/r2plus1d_18.py',
    '../_base_/pipelines/video_16x2x1_112_noflip.py',
    '../_base_/datasets/gym99.py',
    '../_base_/schedules/finetune.py',
]

model = dict(cls_head=dict(num_classes=_base_.num_classes))
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_base_.val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_base_.test_pipeline))
