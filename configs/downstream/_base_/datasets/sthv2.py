# Something-Something v2 in MMAction2's video format (docs/datasets.md), the
# paths of MMAction2's sthv2 configs. Pipelines come from a pipelines/ base.
_base_ = './video_classification.py'

num_classes = 174
data_root = 'data/sthv2/videos'
data_root_val = data_root
ann_file_train = 'data/sthv2/sthv2_train_list_videos.txt'
ann_file_val = 'data/sthv2/sthv2_val_list_videos.txt'

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root_val)))
test_dataloader = val_dataloader
