# Diving-48 (V2 labels) in MMAction2's video format, as written by MMAction2's
# tools/data/diving48 scripts (docs/datasets.md): 48 dive classes that share
# the scene and differ only in motion. MMAction2 lists the official V2 test
# set as "val"; there is a single split. Pipelines come from a pipelines/
# base, so any backbone's linear or finetuning config (the concept method's
# too) inherits this file unchanged.
_base_ = './video_classification.py'

num_classes = 48
data_root = 'data/diving48/videos'
data_root_val = data_root
ann_file_train = 'data/diving48/diving48_train_list_videos.txt'
ann_file_val = 'data/diving48/diving48_val_list_videos.txt'

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root_val)))
test_dataloader = val_dataloader
