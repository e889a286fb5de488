# Static / dynamic kNN monitor for pretraining (docs/downstream.md): every 10
# epochs, weighted kNN (k = 20, temperature 0.07) of the backbone's pooled
# features on Static UCF-101 (appearance only) and on Dynamic UCF-101 (motion
# only), split 1, logged as knn_static/top1, knn_static/top5,
# knn_dynamic/top1, knn_dynamic/top5: whether a run decouples appearance and
# motion, watched while it trains (Tables 1-2 evaluate it by linear probes).
# Off unless a pretraining config lists this file in its _base_.
# Clips: 8 frames every 8th, centre crop 224 (Slow-R50 8x8); for another
# input, copy this file and change SampleFrames, Resize and CenterCrop.
# Data: tools/data/build_static_dynamic_ucf.py (docs/datasets.md).
knn_sampling = dict(
    type='SampleFrames',
    clip_len=8,
    frame_interval=8,
    num_clips=1,
    test_mode=True)
knn_crop = [
    dict(type='Resize', scale=(-1, 256)),
    dict(type='CenterCrop', crop_size=224),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs')
]
knn_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False))
knn_static = dict(
    type='VideoDataset',
    data_prefix=dict(video='data/ucf101_static/videos'),
    pipeline=[dict(type='DecordInit'), knn_sampling,
              dict(type='DecordDecode')] + knn_crop,
    test_mode=True)
knn_dynamic = dict(
    type='RawframeDataset',
    data_prefix=dict(img='data/ucf101_dynamic/rawframes'),
    filename_tmpl='img_{:05}.png',
    pipeline=[knn_sampling, dict(type='RawFrameDecode')] + knn_crop,
    test_mode=True)

custom_hooks = [
    dict(
        type='KNNMonitorHook',
        interval=10,
        k=20,
        temperature=0.07,
        splits=[
            dict(
                name='knn_static',
                train=dict(
                    knn_dataloader,
                    dataset=dict(
                        knn_static,
                        ann_file='data/ucf101_static/'
                        'ucf101_train_split_1_videos.txt')),
                val=dict(
                    knn_dataloader,
                    dataset=dict(
                        knn_static,
                        ann_file='data/ucf101_static/'
                        'ucf101_val_split_1_videos.txt'))),
            dict(
                name='knn_dynamic',
                train=dict(
                    knn_dataloader,
                    dataset=dict(
                        knn_dynamic,
                        ann_file='data/ucf101_dynamic/'
                        'ucf101_train_split_1_rawframes.txt')),
                val=dict(
                    knn_dataloader,
                    dataset=dict(
                        knn_dynamic,
                        ann_file='data/ucf101_dynamic/'
                        'ucf101_val_split_1_rawframes.txt'))),
        ])
]
