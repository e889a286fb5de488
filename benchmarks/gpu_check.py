"""The CUDA-only branches of the bi-level step, checked on one GPU.

* ``amp_fp16``: ``BiLevelOptimWrapper(use_amp=True)`` on CUDA (fp16 with the
  dynamic loss scale): steps are finite and logged with ``loss_scale``;
  weights blown up to overflow fp16 make it skip the step (weights
  unchanged) and halve the scale.
* ``syncbn_nccl``: a one-process nccl group, V-SimCLR + BOD-VCL with SyncBN
  in backbone and neck under ``ReducerFreeDataParallel``, and the
  plain V-CL model under MMEngine's ``MMDistributedDataParallel``: both
  step, and SyncBN's running statistics move.

``--device cpu`` runs the same code with bf16 autocast, gloo and BatchNorm
(SyncBN has no CPU kernels), to check the script itself without a GPU.
Writes ``gpu_check.json`` into ``--out``.

Usage: ``python benchmarks/gpu_check.py --out DIR [--device cpu]``.
"""
import argparse
import json
import os
import os.path as osp
import socket
import sys
import tempfile
import traceback
from typing import Callable, Dict

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_bilevel import _batch, _model_cfg  # noqa: E402


def _model(device: str, decouple: bool, sync_bn: bool):
    from mmaction.registry import MODELS
    cfg = _model_cfg(False)
    if sync_bn:
        cfg['backbone']['norm_cfg'] = dict(type='SyncBN', requires_grad=True)
        cfg['neck']['norm_cfg'] = dict(type='SyncBN')
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg, decouple=decouple))
    return model.to(device).train()


def _wrapper(model, **kwargs):
    from mmengine.optim import build_optim_wrapper
    return build_optim_wrapper(
        model,
        dict(type='BiLevelOptimWrapper',
             constructor='BiLevelOptimWrapperConstructor',
             optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
             hypergrad=dict(type='itd_fd', lower_lr=1e-4),
             clip_grad=dict(max_norm=10.0), **kwargs))


def check_amp(device: str, data) -> Dict[str, object]:
    model = _model(device, True, False)
    amp_dtype = 'float16' if device == 'cuda' else 'bfloat16'
    wrapper = _wrapper(model, use_amp=True, amp_dtype=amp_dtype)
    data = model.data_preprocessor.cast_data(data)
    logs = [model.train_step(data, wrapper) for _ in range(3)]
    result = dict(
        losses=[float(log['loss']) for log in logs],
        finite=all(torch.isfinite(p).all().item()
                   for p in model.parameters()))
    assert result['finite'], 'non-finite weights after AMP steps'
    if amp_dtype != 'float16':
        return result
    scale = logs[-1]['loss_scale'].item()
    with torch.no_grad():
        for param in model.neck.parameters():
            param.mul_(1e4)  # fp16 overflow in the forward
    before = [p.detach().clone() for p in model.parameters()]
    log = model.train_step(data, wrapper)
    assert log['skipped_nonfinite'].item() == 1.0, 'overflow not skipped'
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert wrapper.state_dict()['loss_scale']['scale'] == scale / 2
    result.update(loss_scale=scale, skipped_on_overflow=True)
    return result


def _init_one_process_group(device: str) -> None:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    torch.distributed.init_process_group(
        'nccl' if device == 'cuda' else 'gloo',
        init_method=f'tcp://127.0.0.1:{port}', rank=0, world_size=1)


def check_syncbn_ddp(device: str, data) -> Dict[str, object]:
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import build_optim_wrapper

    from mmbodvcl.engine.model_wrappers import ReducerFreeDataParallel
    _init_one_process_group(device)
    sync_bn = device == 'cuda'
    try:
        model = _model(device, True, sync_bn)
        stats = model.backbone.conv1.bn.running_mean.clone()
        bilevel = ReducerFreeDataParallel(model)
        log = bilevel.train_step(
            model.data_preprocessor.cast_data(data), _wrapper(bilevel))
        moved = not torch.equal(stats, model.backbone.conv1.bn.running_mean)
        plain = _model(device, False, sync_bn)
        ddp = MMDistributedDataParallel(
            plain, device_ids=[0] if device == 'cuda' else None)
        single = ddp.train_step(
            plain.data_preprocessor.cast_data(data),
            build_optim_wrapper(ddp, dict(
                optimizer=dict(type='SGD', lr=0.01))))
    finally:
        torch.distributed.destroy_process_group()
    assert moved, 'BatchNorm statistics did not move'
    return dict(bilevel_loss=float(log['loss']),
                single_level_loss=float(single['loss'].detach()),
                norm=type(model.backbone.conv1.bn).__name__,
                backend='nccl' if device == 'cuda' else 'gloo')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default=os.environ.get('OUT', '.'))
    parser.add_argument('--device', choices=['cuda', 'cpu'], default='cuda')
    args = parser.parse_args()
    from mmengine.registry import init_default_scope

    import mmbodvcl  # noqa: F401
    from checkout import make_video_dataset
    init_default_scope('mmaction')
    with tempfile.TemporaryDirectory() as videos:
        make_video_dataset(videos, num_videos=4, num_frames=24,
                           size=(48, 64))
        data = _batch(videos, 4, 32, 8)
    checks: Dict[str, Callable] = dict(
        amp=check_amp, syncbn_ddp=check_syncbn_ddp)
    results = {}
    for name, check in checks.items():
        try:
            results[name] = dict(ok=True, **check(args.device, data))
        except Exception:  # report every check, then fail
            results[name] = dict(ok=False, error=traceback.format_exc())
        print(name, json.dumps(results[name]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'gpu_check.json'), 'w') as f:
        json.dump(dict(device=args.device, results=results), f, indent=1)
    if not all(r['ok'] for r in results.values()):
        sys.exit(1)


if __name__ == '__main__':
    main()
