# Table 4: finetuning ViT-B on FineGym Gym99 (SEVERE setup).
_base_ = [
    '../_base_/models/vit_b.py',
    '../_base_/pipelines/video_16x4x1_224_noflip.py',
    '../_base_/datasets/gym99.py',
    '../_base_/schedules/finetune.py',
]

model = dict(cls_head=dict(num_classes=_base_.num_classes))
train_dataloader = dict(dataset=dict(pipeline=_base_.train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=_base_.val_pipeline))
test_dataloader = dict(dataset=dict(pipeline=_base_.test_pipeline))
