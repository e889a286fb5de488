# kNN monitor for pretraining (docs/downstream.md, "kNN monitor"): every 10
# epochs the backbone's pooled features of the UCF-101 split-1 train videos
# classify its test videos by weighted kNN (k = 20, temperature 0.07),
# logged as knn/top1 and knn/top5 (text log, vis_data/<timestamp>.json,
# TensorBoard). Off unless a pretraining config lists this file:
#     _base_ = ['./vsimclr_slowr50_k400.py', '../_base_/knn_monitor_ucf101.py']
# Clips: 8 frames every 8th, centre crop 224 (Slow-R50 8x8). For another
# input, copy this file and change SampleFrames, Resize and CenterCrop in
# knn_pipeline (knn_monitor_static_dynamic_ucf101.py takes its clips from
# here).
# Data: docs/datasets.md (UCF-101).
knn_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=8,
        frame_interval=8,
        num_clips=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
# Workers are not kept between evaluations, which are 10 epochs apart.
knn_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False))
knn_ann_file = 'data/ucf101/ucf101_{}_split_1_videos.txt'
knn_ucf101 = dict(
    type='VideoDataset',
    data_prefix=dict(video='data/ucf101/videos'),
    pipeline=knn_pipeline,
    test_mode=True)

custom_hooks = [
    dict(
        type='KNNMonitorHook',
        interval=10,
        k=20,
        temperature=0.07,
        splits=[
            dict(
                name='knn',
                train=dict(
                    knn_dataloader,
                    dataset=dict(
                        knn_ucf101, ann_file=knn_ann_file.format('train'))),
                val=dict(
                    knn_dataloader,
                    dataset=dict(
                        knn_ucf101, ann_file=knn_ann_file.format('val'))))
        ])
]
