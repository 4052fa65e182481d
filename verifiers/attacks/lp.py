"""The registered Lp attacks: each adapter turns a cascade batch into the attack's own call.

Importing this module fills the registry (verifiers.attacks.registry). One adapter per
attack, next to the others so the cascade's whole menu reads in one place; the algorithms
stay in their own modules (pgd, apgd, fab, square).
"""

from __future__ import annotations

import torch

from verifiers.attacks.apgd import ApgdConfig, apgd
from verifiers.attacks.common import AttackOutcome
from verifiers.attacks.fab import FAB_NORMS, FabConfig, fab_targeted
from verifiers.attacks.pgd import PgdConfig, pgd
from verifiers.attacks.queries import score_fn
from verifiers.attacks.registry import AttackCall, Claimed, LpAttack, register
from verifiers.attacks.rowrandom import numpy_rng
from verifiers.attacks.square import SQUARE_NORMS, SquareConfig, square
from verifiers.attacks.targeted import over_targets

LP_NORMS = ("linf", "l2", "l1")


def _gradient(run):  # (call, model, x, y) -> AttackOutcome, as a registered ``run``
    def adapter(call: AttackCall) -> Claimed:
        model = call.target.module
        assert model is not None, "the cascade runs gradient attacks only with a module"
        x = torch.from_numpy(call.x).to(call.target.device)
        y = torch.from_numpy(call.y).to(call.target.device)
        out: AttackOutcome = run(call, model, x, y)
        return Claimed(out.fooled.cpu().numpy(), out.x_adv.cpu().numpy(),
                       out.forward_passes, out.backward_passes)
    return adapter


@_gradient
def _pgd(call: AttackCall, model, x, y) -> AttackOutcome:
    b = call.budget.pgd
    return pgd(model, x, y, call.ball, PgdConfig(call.ball.eps, b.steps, b.restarts),
               call.domain, call.rand)


def _apgd(loss: str):
    @_gradient
    def run(call: AttackCall, model, x, y) -> AttackOutcome:
        b = call.budget.apgd_ce if loss == "ce" else call.budget.apgd_dlr
        cfg = ApgdConfig(b.iterations, b.restarts, loss=loss, eot=call.target.eot)
        return apgd(model, x, y, call.ball, call.domain, cfg, call.rand)
    return run


@_gradient
def _apgd_t(call: AttackCall, model, x, y) -> AttackOutcome:
    b = call.budget.apgd_t
    cfg = ApgdConfig(b.iterations, b.restarts, loss="dlr-targeted", eot=call.target.eot)
    return over_targets(model, x, y, b.targets, call.rand,
                        lambda rx, ry, t, group, gen: apgd(model, rx, ry, call.ball,
                                                           call.domain, cfg, gen, t, group))


@_gradient
def _fab_t(call: AttackCall, model, x, y) -> AttackOutcome:
    b = call.budget.fab_t
    cfg = FabConfig(b.iterations, b.restarts)
    return over_targets(model, x, y, b.targets, call.rand,
                        lambda rx, ry, t, group, gen: fab_targeted(
                            model, rx, ry, t, call.ball, call.domain, cfg, gen, group))


def _square(call: AttackCall) -> Claimed:
    b = call.budget.square
    out = square(score_fn(call.target), call.x, call.y, call.ball, call.domain,
                 SquareConfig(b.queries, b.p_init), numpy_rng(call.rand, 5))
    return Claimed(out.fooled, out.x_adv, out.queries, 0)


register(LpAttack("pgd", LP_NORMS, needs_gradients=True, order=0, salt=0, run=_pgd))
register(LpAttack("apgd-ce", LP_NORMS, needs_gradients=True, order=1, salt=1, run=_apgd("ce")))
register(LpAttack("apgd-dlr", LP_NORMS, needs_gradients=True, order=2, salt=2,
                  run=_apgd("dlr")))
register(LpAttack("apgd-t", LP_NORMS, needs_gradients=True, order=3, salt=3, run=_apgd_t))
register(LpAttack("fab-t", FAB_NORMS, needs_gradients=True, order=4, salt=4, run=_fab_t))
register(LpAttack("square", SQUARE_NORMS, needs_gradients=False, order=5, salt=5, run=_square))
