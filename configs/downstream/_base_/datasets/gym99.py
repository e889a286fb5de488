# FineGym Gym99 sub-action clips as written by MMAction2's
# tools/data/gym scripts (docs/datasets.md).
_base_ = './video_classification.py'

num_classes = 99
data_root = 'data/gym/subactions'
data_root_val = data_root
ann_file_train = 'data/gym/annotations/gym99_train.txt'
ann_file_val = 'data/gym/annotations/gym99_val.txt'

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root_val)))
test_dataloader = val_dataloader
