# Dataloaders and evaluator shared by the downstream classification datasets.
# Each dataset file inherits this and fills in its annotation files and data
# prefix (MMEngine merges the dicts); pipelines come from a pipelines/ base.
train_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='VideoDataset'))
val_dataloader = dict(
    batch_size=8,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', test_mode=True))
test_dataloader = dict(
    batch_size=1,
    num_workers=8,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='VideoDataset', test_mode=True))

val_evaluator = dict(type='AccMetric')
test_evaluator = val_evaluator
