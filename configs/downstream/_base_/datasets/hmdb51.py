# HMDB-51 in MMAction2's video format (docs/datasets.md). The official split
# comes from the environment: ``SPLIT=2 python tools/train.py CONFIG ...``
# (1, 2 or 3; default 1). Pipelines come from a pipelines/ base.
_base_ = './video_classification.py'

split = '{{$SPLIT:1}}'
if split not in ('1', '2', '3'):
    raise ValueError(f'SPLIT must be 1, 2 or 3 (the official HMDB-51 splits), '
                     f'got {split!r}')
num_classes = 51
data_root = 'data/hmdb51/videos'
data_root_val = data_root
ann_file_train = f'data/hmdb51/hmdb51_train_split_{split}_videos.txt'
ann_file_val = f'data/hmdb51/hmdb51_val_split_{split}_videos.txt'

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root_val)))
test_dataloader = val_dataloader
