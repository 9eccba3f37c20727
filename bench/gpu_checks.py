"""Checks only a CUDA device can make (run by bench/gpu_run.sh; CI has no GPU):

1. the eager training step makes no host sync (torch.cuda.set_sync_debug_mode("error"));
2. the step replayed as a CUDA graph computes what the eager step computes: the same losses,
   weights and BatchNorm statistics after a warm-up and a contrastive phase, to rounding
   (cuDNN is not bit-deterministic, and fused Adam rounds differently from the default);
3. bf16 autocast: which dtype cuDNN's LSTM computes in (what the recurrent parts cost).

Prints one JSON line and writes it to the path given (default bench/gpu_checks.json).
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import preset_configs  # noqa: E402
from model import SPYL  # noqa: E402
from step import TrainStep, make_optimizer  # noqa: E402


def run(cfg, xs, phases, cuda_graph, device):
    torch.manual_seed(0)
    model = SPYL(cfg).to(device).to(memory_format=torch.channels_last)
    model.fused_prior = True
    step = TrainStep(model, make_optimizer(model, 2e-3, cuda_graph=cuda_graph), device, torch.bfloat16,
                     cuda_graph=cuda_graph)
    losses = torch.stack([step(x, c) for x, c in zip(xs, phases)]).float().cpu()
    return losses, {k: v.detach().float().cpu() for k, v in model.state_dict().items()}


def main(out="bench/gpu_checks.json"):
    device = torch.device("cuda")
    report = {"device": torch.cuda.get_device_name(device), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    mcfg, batch = preset_configs("cpu")   # a small model: the check is of the step, not of its size
    g = torch.Generator(device=device).manual_seed(1)
    n_warm, n_con = 6, 6                   # per phase: 3 eager steps, the capture, 2 more replays
    xs = [torch.rand(batch, mcfg.frames, *mcfg.step_shape, device=device, generator=g) for _ in range(n_warm + n_con)]
    phases = [False] * n_warm + [True] * n_con

    # 1. no host sync in an eager step (after the first, which may initialise things)
    torch.manual_seed(0)
    model = SPYL(mcfg).to(device)
    step = TrainStep(model, make_optimizer(model, 2e-3), device, torch.bfloat16)
    step(xs[0], True)
    torch.cuda.synchronize()
    try:
        torch.cuda.set_sync_debug_mode("error")
        step(xs[1], False)
        step(xs[2], True)
        report["eager_step_host_syncs"] = 0
    except RuntimeError as e:
        report["eager_step_host_syncs"] = f"a sync: {str(e).splitlines()[0]}"
    finally:
        torch.cuda.set_sync_debug_mode(0)

    # 2. graph against eager
    eager_losses, eager_state = run(mcfg, xs, phases, False, device)
    graph_losses, graph_state = run(mcfg, xs, phases, True, device)
    report["losses_eager"] = eager_losses[:, -1].tolist()
    report["losses_graph"] = graph_losses[:, -1].tolist()
    relative = (graph_losses - eager_losses).abs() / eager_losses.abs().clamp_min(1e-6)
    report["loss_max_rel_diff"] = float(relative.max())
    report["weights_max_rel_diff"] = max(float((graph_state[k] - v).norm() / v.norm().clamp_min(1e-12)) for k,
                                         v in eager_state.items())
    report["bn_batches_tracked_equal"] = all(torch.equal(graph_state[k], v) for k,
                                             v in eager_state.items() if k.endswith("num_batches_tracked"))

    # 3. the LSTM's dtype under bf16 autocast
    lstm = torch.nn.LSTM(8, 16, batch_first=True).to(device)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        report["lstm_dtype_under_bf16_autocast"] = str(lstm(torch.randn(2, 3, 8, device=device))[0].dtype)
    print(json.dumps(report))
    with open(out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
