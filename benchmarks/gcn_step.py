"""Where a GCN training step's time goes (issue #9, "fit speed"). Prints a markdown table.

    python benchmarks/gcn_step.py

For the paper recipe (hidden 600, batch 1) and ``gcn_plus`` (hidden 128, batch 4): the
forward+backward of one step, the fused AdamW step, one 9x600x600 matmul, and the implied
seconds per 900-cell epoch. One torch thread, as the predictors train. Then the moving
average's update per step (``ema > 0``): ``torch.optim.swa_utils.AveragedModel`` against
nasloop's own ``_EMA`` (the same arithmetic).
"""
from __future__ import annotations

import time

import torch

from nasloop.graph import FEATURES
from nasloop.predictors.gcn import GCNNet, _ema_model


def _ms(fn, n: int = 300) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e3


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("| recipe | hidden | batch | fwd+bwd ms | AdamW step ms | step ms | s / epoch (900 cells) |")
    print("|---|---|---|---|---|---|---|")
    for label, hidden, batch in (("gcn (paper)", 600, 1), ("gcn_plus", 128, 4)):
        net = GCNNet(len(FEATURES), hidden, 4, 0.002).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=5e-4, fused=True)
        adj = (torch.rand(batch, 9, 9) > 0.6).float()
        x, t = torch.rand(batch, 9, len(FEATURES)), torch.rand(batch)

        def fwd_bwd():
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.l1_loss(net(adj, x), t).backward()
        fb = _ms(fwd_bwd)
        st = _ms(opt.step)
        step = fb + st
        print(f"| {label} | {hidden} | {batch} | {fb:.3f} | {st:.3f} | {step:.3f} | "
              f"{step * 900 / batch / 1e3:.2f} |")
    w, a = torch.rand(600, 600), torch.rand(9, 600)
    print(f"\none 9x600 @ 600x600 matmul: {_ms(lambda: a @ w.T, 2000):.3f} ms")
    net = GCNNet(len(FEATURES), 128, 4, 0.002)
    swa = torch.optim.swa_utils
    ref = swa.AveragedModel(net, multi_avg_fn=swa.get_ema_multi_avg_fn(0.999))
    own = _ema_model(net, 5.0, 200)
    print("\n| moving-average update (gcn_plus) | ms per step |\n|---|---|")
    print(f"| AveragedModel | {_ms(lambda: ref.update_parameters(net), 2000):.3f} |")
    print(f"| nasloop _EMA | {_ms(lambda: own.update_parameters(net), 2000):.3f} |")


if __name__ == "__main__":
    main()
