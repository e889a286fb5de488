# HMDB-51 for video retrieval (docs/downstream.md): one test set holding the
# train split (the gallery) then the test split (the queries), split from
# SPLIT as in ./hmdb51.py; no training or validation. Leaf configs give the
# model and the pipeline (test_dataloader.dataset.pipeline, shared by both).
_base_ = ['./hmdb51.py', '../retrieval.py']

test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='RetrievalDataset',
        gallery=_base_.train_dataloader.dataset,
        query=_base_.val_dataloader.dataset))
train_dataloader = None
val_dataloader = None
val_evaluator = None
test_evaluator = dict(_delete_=True, type='VideoRetrievalMetric')
