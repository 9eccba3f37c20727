"""The training step of step.py: the eager step is the one train.py ran before it (bit for bit),
the step a CUDA graph captures computes the same, and the whole step traces as one graph."""
import inspect

import pytest
import torch

from conftest import tiny_config
from model import SPYL
from step import TrainStep, make_optimizer
from utils import SPYLError

CPU = torch.device("cpu")


def batches(cfg, n=4, B=6):
    g = torch.Generator().manual_seed(1)
    return [torch.rand(B, cfg.frames, *cfg.step_shape, generator=g) for _ in range(n)]


def state(model):
    """Every parameter and buffer (BatchNorm running statistics and counts included)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def run_reference(cfg, xs, phases):
    # train.py's loop as it was written before step.py: forward, zero_grad(set_to_none), backward, Adam
    torch.manual_seed(0)
    model = SPYL(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, betas=(0.9, 0.999))
    losses = []
    for x, contrastive in zip(xs, phases):
        terms = model(x, contrastive=contrastive)
        opt.zero_grad(set_to_none=True)
        terms["loss"].backward()
        opt.step()
        losses.append(torch.stack([v.detach() for v in terms.values()]))
    return losses, state(model), opt.state_dict()


def run_step(cfg, xs, phases, captured_body=False):
    torch.manual_seed(0)
    model = SPYL(cfg)
    opt = make_optimizer(model, 2e-3)
    step = TrainStep(model, opt, CPU)
    step.cuda_graph = captured_body  # the body a capture records: grads zeroed in place, no autocast cache
    losses = [step._eager(x, c) if captured_body else step(x, c) for x, c in zip(xs, phases)]
    return losses, state(model), opt.state_dict(), step


@pytest.mark.parametrize("captured_body", [False, True])
def test_step_is_the_old_step_bit_for_bit(captured_body):
    cfg = tiny_config(conv_width=8)
    xs, phases = batches(cfg), [False, False, True, True]   # warm-up steps, then contrastive ones
    ref_losses, ref_state, ref_opt = run_reference(cfg, xs, phases)
    losses, new_state, new_opt, step = run_step(cfg, xs, phases, captured_body)
    assert step.names[False] == ["recon", "kl_s", "kl_d", "mi", "loss"]
    assert step.names[True] == ["recon", "kl_s", "kl_d", "mi", "nce_s", "nce_d", "loss"]
    for a, b in zip(ref_losses, losses):
        assert torch.equal(a, b)
    assert ref_state.keys() == new_state.keys() and any("running_mean" in k for k in ref_state)
    for k in ref_state:
        assert torch.equal(ref_state[k], new_state[k]), k
    for i, s in ref_opt["state"].items():
        assert torch.equal(s["exp_avg_sq"], new_opt["state"][i]["exp_avg_sq"])


def test_a_cuda_graph_needs_cuda():
    model = SPYL(tiny_config())
    with pytest.raises(SPYLError, match="--cuda-graph needs a CUDA device"):
        TrainStep(model, make_optimizer(model, 1e-3), CPU, cuda_graph=True)


def test_the_whole_step_traces_as_one_graph():
    # The nearest a CPU comes to proving the step can be captured: torch.compile with
    # fullgraph=True refuses any graph break (a host sync, a data-dependent shape, an untraceable
    # call). The forward is traced with its backward (AOTAutograd) and the Adam update apart, as
    # torch.compile's CUDA graphs would hold them; aot_eager traces without generating code.
    import torch._dynamo
    cfg = tiny_config(frames=3, image_size=16, negative_mode="hard")  # hard: the random permutation is in the graph too
    torch.manual_seed(0)
    model = SPYL(cfg)
    model.fused_prior = True
    opt = make_optimizer(model, 2e-3)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(allow_rnn=True):
        forward = torch.compile(model, backend="aot_eager", fullgraph=True)
        # Optimizer.step breaks the graph on purpose around its body (a no_grad switch); the body,
        # Adam's update itself, must trace whole.
        adam_update = inspect.unwrap(type(opt).step)
        update = torch.compile(torch.no_grad()(lambda: adam_update(opt)), backend="aot_eager", fullgraph=True)
        losses = []
        for x in batches(cfg, n=2):
            terms = forward(x, contrastive=True)
            opt.zero_grad(set_to_none=False)
            terms["loss"].backward()
            update()
            losses.append(terms["loss"].item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_a_prior_learning_rate_of_its_own_moves_the_prior_alone_faster():
    cfg = tiny_config(conv_width=8)
    x = batches(cfg, n=1)[0]
    moved = {}
    for prior_lr in (0.0, 1e-2):
        torch.manual_seed(0)
        model = SPYL(cfg)
        before = state(model)
        opt = make_optimizer(model, 1e-3, prior_lr=prior_lr)
        TrainStep(model, opt, CPU)(x, False)
        moved[prior_lr] = {k: (v - before[k]).abs().max().item() for k,
                           v in state(model).items() if v.is_floating_point()}
        assert len(opt.param_groups) == (2 if prior_lr else 1)
    for k, m in moved[1e-2].items():
        if k.startswith("prior_") and "bias" not in k:   # Adam's first step moves each weight by about its lr
            assert m > 5 * moved[0.0][k], k
        elif not k.startswith("prior_"):
            assert m == moved[0.0][k], k                  # the rest: the same step to the bit
