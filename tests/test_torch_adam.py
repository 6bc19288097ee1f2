"""TorchAdam against torch.optim.Adam (single-tensor form): the same steps, bit for bit."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recon.fitters._torch_adam import TorchAdam  # noqa: E402


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="torch sees no CUDA GPU"))]


def _run(make_opt, step, device="cpu"):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(5, 3, generator=gen).to(device).requires_grad_()
    b = torch.randn(7, generator=gen).to(device).requires_grad_()
    target = torch.randn(5, 3, generator=gen).to(device)
    opt = make_opt([a, b])
    for k in range(1, 26):
        opt.zero_grad()
        loss = ((a - target) ** 2).sum() + (b ** 4).sum() if k % 5 else ((a - target) ** 2).sum()
        loss.backward()
        step(opt, 0.05 / k)  # a learning rate that changes every step, as the fitter's does
    return a.detach().cpu().numpy().copy(), b.detach().cpu().numpy().copy()


@pytest.mark.parametrize("device", DEVICES)
def test_same_steps_as_torch_optim_adam(device):
    def torch_step(opt, lr):
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()

    ours = _run(lambda p: TorchAdam(p, (0.9, 0.99), eps=1e-15), lambda opt, lr: opt.step(lr), device)
    ref = _run(lambda p: torch.optim.Adam(p, lr=0.0, betas=(0.9, 0.99), eps=1e-15, foreach=False), torch_step, device)
    for x, y in zip(ours, ref):
        np.testing.assert_array_equal(x, y)
    assert not np.allclose(ours[0], _run(lambda p: TorchAdam(p), lambda opt, lr: opt.step(lr))[0])


def test_a_tensor_without_gradient_stays_put():
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = TorchAdam([a, b], eps=1e-8)
    (a ** 2).sum().backward()
    opt.step(0.1)
    np.testing.assert_allclose(a.detach().numpy(), 0.9, rtol=1e-6)  # the first Adam step is lr * sign
    np.testing.assert_array_equal(b.detach().numpy(), 1.0)
