# Video retrieval on UCF-101 with R(2+1)D-18 features, 16 frames every 4th
# at 112 px as in the concept paper's Table 2 (SPLIT=1..3; the literature
# reports split 1): test videos query train videos by the cosine similarity
# of their pooled backbone features, 10 clips per video averaged;
# retrieval/R@1, R@5, R@10, R@20.
_base_ = [
    '../_base_/models/r2plus1d_18.py',
    '../_base_/pipelines/video_16x4x1_112.py',
    '../_base_/datasets/ucf101_retrieval.py',
]

model = dict(
    _delete_=True,
    type='VideoFeatureExtractor',
    backbone=_base_.model.backbone,
    data_preprocessor=_base_.model.data_preprocessor)
test_dataloader = dict(
    dataset=dict(pipeline=[
        dict(step, num_clips=10) if step['type'] == 'SampleFrames' else step
        for step in _base_.test_pipeline
    ]))
