# Static / dynamic kNN monitor for pretraining (docs/downstream.md): every 10
# epochs, weighted kNN (k = 20, temperature 0.07) of the backbone's pooled
# features on Static UCF-101 (appearance only) and on Dynamic UCF-101 (motion
# only), split 1, logged as knn_static/top1, knn_static/top5,
# knn_dynamic/top1, knn_dynamic/top5: whether a run decouples appearance and
# motion, watched while it trains (Tables 1-2 evaluate it by linear probes).
# Off unless a pretraining config lists this file in its _base_ (instead of
# knn_monitor_ucf101.py, whose clips, loaders and hook options it reuses).
# Data: tools/data/build_static_dynamic_ucf.py (docs/datasets.md).
_base_ = './knn_monitor_ucf101.py'

# The same clips from Dynamic UCF-101's lossless PNG frames.
knn_rawframe_pipeline = [
    dict(type='RawFrameDecode') if step['type'] == 'DecordDecode' else step
    for step in _base_.knn_pipeline if step['type'] != 'DecordInit'
]
knn_static = dict(
    _base_.knn_ucf101, data_prefix=dict(video='data/ucf101_static/videos'))
knn_dynamic = dict(
    type='RawframeDataset',
    data_prefix=dict(img='data/ucf101_dynamic/rawframes'),
    filename_tmpl='img_{:05}.png',
    pipeline=knn_rawframe_pipeline,
    test_mode=True)
knn_static_ann = 'data/ucf101_static/ucf101_{}_split_1_videos.txt'
knn_dynamic_ann = 'data/ucf101_dynamic/ucf101_{}_split_1_rawframes.txt'

custom_hooks = [
    dict(
        _base_.custom_hooks[0],
        splits=[
            dict(
                name=f'knn_{kind}',
                train=dict(
                    _base_.knn_dataloader,
                    dataset=dict(dataset, ann_file=ann.format('train'))),
                val=dict(
                    _base_.knn_dataloader,
                    dataset=dict(dataset, ann_file=ann.format('val'))))
            for kind, dataset, ann in (
                ('static', knn_static, knn_static_ann),
                ('dynamic', knn_dynamic, knn_dynamic_ann))
        ])
]
