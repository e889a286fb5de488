# Static and Dynamic Concepts on R(2+1)D-18, 16 frames at interval 4, 112 px,
# pretrained on Kinetics-400 for 100 epochs: Table 1's "R(2+1)D Kinetics-400"
# rows, Tables 3-5. 8 GPUs x 12 videos = 96 per step.
_base_ = './concepts_r2plus1d18_16x4_112px_ucf101.py'

# Prototypes frozen for the first epoch: ~240k K400 training videos in
# batches of 96 (adjust to the size of your copy).
model = dict(head=dict(freeze_prototypes_iters=2500))

data_root = 'data/kinetics400/videos_train'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'
train_dataloader = dict(
    dataset=dict(ann_file=ann_file_train, data_prefix=dict(video=data_root)))

# The authors' README for K400: 100 epochs, learning rate x0.1 at epoch 70.
max_epochs = 100
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[70],
        gamma=0.1)
]
train_cfg = dict(max_epochs=max_epochs)
