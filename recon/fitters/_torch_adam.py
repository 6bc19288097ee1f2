"""Adam (Kingma and Ba, 2015) on a list of torch tensors, without ``torch.optim``.

``torch.optim.Optimizer.step`` imports ``torch._dynamo`` when first called, which can cost
a process's first csp fit several seconds of imports (``perf/bench_cold_start.py``).
The arithmetic is ``torch.optim.Adam``'s single-tensor form without weight decay, so fits
on the CPU come out bit for bit as before.
"""

from __future__ import annotations


class TorchAdam:
    """``step(lr)`` moves every tensor in ``params`` against its ``.grad``.

    ``params``: leaf tensors (any shape, float32, on one device) that autograd fills;
    ``betas``: the moments' decay rates; ``eps``: added to the root of the second moment.
    """

    def __init__(self, params, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        import torch

        self.torch = torch
        self.params = list(params)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = [0] * len(self.params)  # per tensor: one without a gradient skips a step
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self, lr: float) -> None:
        with self.torch.no_grad():
            for i, (p, m, v) in enumerate(zip(self.params, self.m, self.v)):
                if p.grad is None:
                    continue
                self.steps[i] += 1
                step_size = lr / (1.0 - self.beta1 ** self.steps[i])
                root_correction = (1.0 - self.beta2 ** self.steps[i]) ** 0.5
                m.lerp_(p.grad, 1.0 - self.beta1)
                v.mul_(self.beta2).addcmul_(p.grad, p.grad, value=1.0 - self.beta2)
                p.addcdiv_(m, (v.sqrt() / root_correction).add_(self.eps), value=-step_size)
