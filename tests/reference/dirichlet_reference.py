"""PyTorch autograd + mpmath as the oracle of upcycle's Dirichlet-prior shaping loss (model/dirichlet_prior.h).

Usage: dirichlet_reference.py CASE_JSON  (run by tests/unit/dirichlet_prior_test.cpp)

CASE_JSON: {"cases": [{"probs": [[...E], ... T rows], "alpha": [...E]}, ...]}
Prints {"cases": [{"loss": L, "grad": [[...E], ... T rows], "cdf": [[...]]}, ...]} on stdout where, per case,
  L = (1/E) sum_e (1/T) sum_i (F_e(p_(i)e) - i/(T+1))^2  with F_e the CDF of Beta(a_e, sum(a) - a_e),
the sort is torch.sort (autograd routes each sorted value's gradient back to its token), F_e is
mpmath.betainc(regularized=True) at 50 significant digits wrapped as an autograd Function whose
derivative is the Beta density from mpmath, grad = dL/dp from loss.backward() in float64, and cdf[t][e] =
F_e(p[t][e]) (the independent check of upcycle's beta_cdf at general alpha).
"""
import json
import sys

import mpmath
import torch

mpmath.mp.dps = 50


def beta_cdf(x, a, b):
    return float(mpmath.betainc(a, b, 0, x, regularized=True))


def beta_pdf(x, a, b):
    x = mpmath.mpf(x)
    return float(x ** (a - 1) * (1 - x) ** (b - 1) / mpmath.beta(a, b))


class BetaCdf(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, a, b):
        ctx.save_for_backward(x)
        ctx.a, ctx.b = a, b
        return torch.tensor([beta_cdf(float(v), a, b) for v in x], dtype=torch.float64)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        density = torch.tensor([beta_pdf(float(v), ctx.a, ctx.b) for v in x], dtype=torch.float64)
        return grad * density, None, None


def reference(probs, alpha):
    p = torch.tensor(probs, dtype=torch.float64, requires_grad=True)
    T, E = p.shape
    total = sum(alpha)
    targets = torch.arange(1, T + 1, dtype=torch.float64) / (T + 1)
    loss = torch.zeros((), dtype=torch.float64)
    for e in range(E):
        a, b = alpha[e], total - alpha[e]
        sorted_p, _ = torch.sort(p[:, e])
        loss = loss + ((BetaCdf.apply(sorted_p, a, b) - targets) ** 2).sum()
    loss = loss / (E * T)
    loss.backward()
    cdf = [[beta_cdf(v, alpha[e], total - alpha[e]) for e, v in enumerate(row)] for row in probs]
    return {"loss": loss.item(), "grad": p.grad.tolist(), "cdf": cdf}


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    json.dump({"cases": [reference(c["probs"], c["alpha"]) for c in spec["cases"]]}, sys.stdout)


if __name__ == "__main__":
    main()
