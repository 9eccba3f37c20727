"""One training step of SPYL (forward, backward, Adam), run eagerly or replayed as a CUDA graph.

A step of the paper preset is about 2,000 small kernels. On a GPU the host spends 35-45 us
issuing each one, so the step takes as long as the issuing, whatever the arithmetic. A CUDA
graph records the kernels of one step once and replays them all with a single launch.

What capture needs, and where it is met:
- static shapes: every batch of an epoch is full (`dataloader.batch_indices` drops the rest),
  the negative bank and the number of negatives are fixed by the config;
- no host syncs and no data-dependent shapes inside the step: the model reads nothing back
  (`model.SPYL.forward`), hard negatives are drawn by sorting random keys, not `randperm`;
- random numbers: the default CUDA generator is graph-safe, each replay draws fresh numbers;
- an optimiser that keeps its step count on the device (`capturable=True`; `make_optimizer`);
- autocast without its weight cache (a cached cast would outlive the capture);
- gradients that stay where they are: zeroed in place, never set to None, so the captured
  backward and Adam update read and write the same tensors every replay.

The graph path is CUDA only; on a CPU the same class runs the eager step, which is what
train.py ran before this file existed (tests/test_step.py checks both claims that a CPU can).
"""
import torch

from utils import SPYLError, autocast

# Eager steps of a phase before it is captured, run on a side stream as capture requires: they
# let cuDNN and cuBLAS pick their algorithms and allocate their workspaces first. They are
# ordinary training steps on real batches, so capturing adds no step to the run.
EAGER_STEPS_BEFORE_CAPTURE = 3


def make_optimizer(model, lr, cuda_graph=False, prior_lr=0.0):
    """Adam as the paper uses it (betas 0.9, 0.999); with prior_lr > 0, the prior's parameters
    (model.SPYL.prior_parameters) learn at that rate, the rest at lr. For a CUDA graph: the
    fused kernel with its step count on the device, so the update is a few launches and can be
    captured."""
    extra = {"capturable": True, "fused": True} if cuda_graph else {}
    params = model.parameters()
    if prior_lr:
        prior = {id(p) for p in model.prior_parameters()}
        params = [{"params": [p for p in model.parameters() if id(p) not in prior]},
                  {"params": model.prior_parameters(), "lr": prior_lr}]
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), **extra)


class TrainStep:
    """Calling it runs one optimiser step on a batch and returns the loss terms, stacked in the
    order of `names[contrastive]`, on the device (nothing is read back).

    forward: the module whose call gives the loss terms (the model, or its compiled or DDP
    wrapper); cuda_graph: capture each phase (warm-up, contrastive) on its first batches and
    replay it from then on.
    """

    def __init__(self, forward, optimizer, device, amp_dtype=None, cuda_graph=False):
        if cuda_graph and device.type != "cuda":
            raise SPYLError(f"--cuda-graph needs a CUDA device, and this run is on {device}; drop --cuda-graph")
        self.forward, self.optimizer, self.device, self.amp_dtype = forward, optimizer, device, amp_dtype
        self.cuda_graph = cuda_graph
        self.names = {}            # contrastive -> the names of the loss terms
        self._eager_steps = {}     # contrastive -> eager steps run so far (graph path)
        self._graph = None         # (contrastive, CUDAGraph, static input, static output)

    def __call__(self, x, contrastive, index=None):
        """One step on batch x (B x T x *step_shape; index: its rows of the training set, or None):
        the loss terms, a 1-d tensor."""
        if not self.cuda_graph:
            return self._eager(x, contrastive, index)
        if self._graph is None or self._graph[0] != contrastive:
            done = self._eager_steps.get(contrastive, 0)
            if done < EAGER_STEPS_BEFORE_CAPTURE:
                self._eager_steps[contrastive] = done + 1
                return self._on_side_stream(lambda: self._eager(x, contrastive, index))
            self._graph = None     # the warm-up graph is never replayed again: free its memory first
            self._graph = self._capture(x, contrastive, index)
        _, graph, static_x, static_index, static_out = self._graph
        static_x.copy_(x)
        if index is not None:
            static_index.copy_(index)
        graph.replay()
        return static_out.clone()  # the next replay overwrites static_out

    def _eager(self, x, contrastive, index=None):
        # The autocast weight cache is off under capture only: eagerly it saves casting a
        # weight again each time the step reuses it.
        with autocast(self.device, self.amp_dtype, cache_enabled=not self.cuda_graph):
            terms = self.forward(x, contrastive=contrastive, index=index)
        self.names[contrastive] = list(terms)
        self.optimizer.zero_grad(set_to_none=not self.cuda_graph)
        terms["loss"].backward()
        self.optimizer.step()
        return torch.stack([v.detach() for v in terms.values()])

    def _on_side_stream(self, fn):
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            out = fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        return out

    def _capture(self, x, contrastive, index=None):
        """Record one step of this phase; the capture computes nothing, so it is then replayed
        once for the batch x it was recorded on (by __call__)."""
        static_x, static_index = x.clone(), None if index is None else index.clone()
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(self.device)
        with torch.cuda.graph(graph):
            static_out = self._eager(static_x, contrastive, static_index)
        return contrastive, graph, static_x, static_index, static_out
