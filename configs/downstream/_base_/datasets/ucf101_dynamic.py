# Dynamic UCF-101 (Tables 1-2): noise warped by the optical flow of every
# UCF-101 video, lossless PNG rawframes built by
# tools/data/build_static_dynamic_ucf.py dynamic. Split from the environment
# as for UCF-101 (SPLIT=1, 2 or 3; default 1).
_base_ = './video_classification.py'

split = '{{$SPLIT:1}}'
if split not in ('1', '2', '3'):
    raise ValueError(f'SPLIT must be 1, 2 or 3 (the official UCF-101 splits), '
                     f'got {split!r}')
num_classes = 101
dataset_type = 'RawframeDataset'
data_root = 'data/ucf101_dynamic/rawframes'
data_root_val = data_root
ann_file_train = (
    f'data/ucf101_dynamic/ucf101_train_split_{split}_rawframes.txt')
ann_file_val = f'data/ucf101_dynamic/ucf101_val_split_{split}_rawframes.txt'

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(img=data_root),
        filename_tmpl='img_{:05}.png'))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_val,
        data_prefix=dict(img=data_root_val),
        filename_tmpl='img_{:05}.png'))
test_dataloader = val_dataloader
