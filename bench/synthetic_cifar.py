"""A ResNet-18 briefly trained on a synthetic, learnable 10-class task of 32x32 colour images.

No data set can be downloaded here, and a random-init network is useless for comparing
attacks (every point falls at once). So each class is a smooth random template (seeded), and
a sample is ``(1 - w) * template[label] + w * nuisance`` with a fresh smooth image as the
nuisance (``w = NUISANCE``): learnable, with class overlap, so a briefly trained network is
accurate on clean points and some of them resist an 8/255 attack while others do not.
(A nearest-template classifier gets about 98% clean and 74% robust at Linf 8/255 on it.)

Training is fast adversarial training (FGSM with a random start, Wong et al. 2020) at Linf
``train_eps`` on fresh samples every step, seeded (cuDNN may still add run-to-run noise on a
GPU). Figures measured on this model are costs on a synthetic task, not CIFAR-10 results.

Architecture: torchvision's ResNet-18 with 10 classes (bench/realsize.py's builder). Stem
``cifar`` (default) swaps the ImageNet stem (7x7 stride-2 conv + max-pool, which shrinks a
32x32 input to 8x8 at once) for the 3x3 stride-1 conv without pooling of the CIFAR ResNet-18
RobustBench lists (about 0.56 GFLOPs per image); ``imagenet`` keeps realsize's model as is
(about 15x cheaper: CPU smoke runs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.realsize import synthetic_images, torchvision_net
from verifiers.attacks.rowrandom import mix

SHAPE = (3, 32, 32)
CLASSES = 10
NUISANCE = 0.6
STEMS = ("cifar", "imagenet")


@dataclass(frozen=True)
class SyntheticTask:
    seed: int

    def templates(self) -> np.ndarray:
        return synthetic_images(CLASSES, SHAPE, mix(self.seed, 1))

    def sample(self, n: int, stream: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` images in [0, 1] and their labels; ``stream`` picks an independent draw."""
        labels = np.random.default_rng(mix(self.seed, 2, stream)).integers(0, CLASSES, n)
        nuisance = synthetic_images(n, SHAPE, mix(self.seed, 3, stream))
        x = (1 - NUISANCE) * self.templates()[labels] + NUISANCE * nuisance
        return x.astype(np.float32), labels.astype(np.int64)


def resnet18(stem: str, seed: int) -> nn.Module:
    """realsize's ResNet-18 (10 classes, seeded init), with the CIFAR stem if asked."""
    if stem not in STEMS:
        raise ValueError(f"stem {stem!r}: use one of {STEMS}")
    net = torchvision_net("resnet18-cifar", seed)
    if stem == "cifar":
        torch.manual_seed(mix(seed, 4))
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return net


@dataclass(frozen=True)
class Trained:
    net: nn.Module          # eval mode, on the CPU
    steps: int
    seconds: float
    last_loss: float


def train(task: SyntheticTask, stem: str, steps: int, batch: int, train_eps: float,
          device: torch.device, seed: int) -> Trained:
    """FGSM-RS adversarial training on fresh samples: ``steps`` Adam steps of ``batch``."""
    net = resnet18(stem, seed).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=max(steps, 1))
    gen = torch.Generator(device=device).manual_seed(mix(seed, 5))
    loss = torch.zeros(())
    t0 = time.perf_counter()
    for step in range(steps):
        xs, ys = task.sample(batch, stream=mix(seed, 6, step))
        x, y = torch.from_numpy(xs).to(device), torch.from_numpy(ys).to(device)
        x_adv = _fgsm_rs(net, x, y, train_eps, gen)
        loss = F.cross_entropy(net(x_adv), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    return Trained(net.cpu().eval(), steps, seconds, float(loss.detach().cpu()))


def _fgsm_rs(net: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
             gen: torch.Generator) -> torch.Tensor:
    """One signed-gradient step of 1.25 eps from a uniform start, kept in the ball and [0, 1]."""
    if eps <= 0:
        return x
    delta = (torch.rand(x.shape, generator=gen, device=x.device) * 2 - 1) * eps
    delta.requires_grad_(True)
    grad, = torch.autograd.grad(F.cross_entropy(net((x + delta).clamp(0, 1)), y), delta)
    delta = (delta + 1.25 * eps * grad.sign()).clamp(-eps, eps)
    return (x + delta).clamp(0, 1).detach()
