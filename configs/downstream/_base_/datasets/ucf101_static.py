# Static UCF-101 (Tables 1-2): the middle frame of every UCF-101 video
# repeated, built by tools/data/build_static_dynamic_ucf.py static. Split from
# the environment as for UCF-101 (SPLIT=1, 2 or 3; default 1).
_base_ = './video_classification.py'

split = '{{$SPLIT:1}}'
if split not in ('1', '2', '3'):
    raise ValueError(f'SPLIT must be 1, 2 or 3 (the official UCF-101 splits), '
                     f'got {split!r}')
num_classes = 101
data_root = 'data/ucf101_static/videos'
data_root_val = data_root
ann_file_train = f'data/ucf101_static/ucf101_train_split_{split}_videos.txt'
ann_file_val = f'data/ucf101_static/ucf101_val_split_{split}_videos.txt'

train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))
val_dataloader = dict(
    dataset=dict(ann_file=ann_file_val, data_prefix=dict(video=data_root_val)))
test_dataloader = val_dataloader
