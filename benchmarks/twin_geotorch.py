"""Twin check of the suite's ``geotorch_expm`` against geotorch's own copying example.

    python benchmarks/twin_geotorch.py --geotorch PATH/TO/geotorch

PATH/TO/geotorch is a checkout of https://github.com/lezcano/geotorch; its
``examples/copying_problem.py`` (the expRNN cell of Lezcano-Casado & Martinez-Rubio, ICML 2019,
arXiv:1901.08428, written with geotorch) is imported at run time as a module; nothing of it is part of
this repository. The module sets ``device = cuda`` at import; the script points it at the CPU.

Part 1, "same": float64, the example's weights loaded into the suite's model, same batches, the
example's optimizer (Adam, lr 1e-3; orthogonal group lr 2e-4 with betas (0.9, 0.95)) on both sides.
The example's input kernel has a bias the suite's models do not have (expRNN's code has none); here
it is held at zero, so both sides compute the same function.
Part 2, "seeds": float32, each side with its own init and data stream (the example's ``copy_data``
and ``Model``, input bias trained as in the example; the suite's seeded task and model), the same
optimizer, ``--seeds`` seeds each; training loss mean and standard deviation at checkpoints.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_spread import checkpoints, spread_rows  # noqa: E402  (benchmarks/, this script's folder)

from suite.seeding import seeded  # noqa: E402


def load_example(path: Path, L: int, n: int):
    spec = importlib.util.spec_from_file_location("geotorch_copying", path / "examples" / "copying_problem.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.device = torch.device("cpu")
    mod.L, mod.hidden_size = L, n
    return mod


def suite_model(n: int, seed: int = 0):
    from suite.registry import create_model

    with seeded(seed):
        return create_model("geotorch_expm", d_in=10, d_out=9, output="sequence", hidden=n, readout_init="kaiming")


def optimizers(rest, orth, lr, lr_orth):
    return torch.optim.Adam([{"params": rest}, {"params": orth, "lr": lr_orth, "betas": (0.9, 0.95)}], lr=lr)


def split(model, orth_module):
    orth = list(orth_module.parameters())
    ids = {id(p) for p in orth}
    return [p for p in model.parameters() if id(p) not in ids and p.requires_grad], orth


def same(args) -> dict:
    torch.set_default_dtype(torch.float64)
    mod = load_example(args.geotorch, args.L, args.hidden)
    torch.manual_seed(0)
    theirs = mod.Model(8, args.hidden)
    ours = suite_model(args.hidden)
    with torch.no_grad():
        theirs.rnn.input_kernel.bias.zero_()
        ours.transition.holder.weight = theirs.rnn.recurrent_kernel.weight  # through the parametrization
        ours.input.weight.copy_(theirs.rnn.input_kernel.weight)
        ours.act.bias.copy_(theirs.rnn.nonlinearity.b)
        ours.readout.weight.copy_(theirs.lin.weight)
        ours.readout.bias.copy_(theirs.lin.bias)
    theirs.rnn.input_kernel.bias.requires_grad_(False)
    o_theirs = optimizers(*split(theirs, theirs.rnn.recurrent_kernel), args.lr, args.lr_orth)
    o_ours = optimizers(*split(ours, ours.transition), args.lr, args.lr_orth)
    from suite.registry import create_task

    task = create_task("copying", T=args.L, K=10, layout="B")
    worst = dict.fromkeys(("logits", "loss", "grad X", "grad U", "W", "U", "readout"), 0.0)
    losses = []
    for step in range(1, args.steps + 1):
        x, y = task.train_batch(step, args.batch, 0)
        x = x.to(torch.float64)
        lt, lo = theirs(x), ours(x)
        loss_t, loss_o = theirs.loss(lt, y), task.loss(lo, y)
        o_theirs.zero_grad()
        o_ours.zero_grad()
        loss_t.backward()
        loss_o.backward()
        gt = theirs.rnn.recurrent_kernel.parametrizations.weight.original.grad
        go = ours.transition.holder.parametrizations.weight.original.grad
        d = {"logits": (lt - lo).abs().max(), "loss": (loss_t - loss_o).abs(), "grad X": (gt - go).abs().max(),
             "grad U": (theirs.rnn.input_kernel.weight.grad - ours.input.weight.grad).abs().max()}
        o_theirs.step()
        o_ours.step()
        with torch.no_grad():
            d.update(W=(theirs.rnn.recurrent_kernel.weight - ours.transition.matrix()).abs().max(),
                     U=(theirs.rnn.input_kernel.weight - ours.input.weight).abs().max(),
                     readout=(theirs.lin.weight - ours.readout.weight).abs().max())
        for k, v in d.items():
            worst[k] = max(worst[k], float(v.detach()))
        losses.append((loss_t.item(), loss_o.item()))
    return {"part": "same", "steps": args.steps, "first_loss": losses[0], "last_loss": losses[-1],
            "max_abs_diff": worst}


def seeds(args) -> dict:
    torch.set_default_dtype(torch.float32)
    from suite.registry import create_task

    task = create_task("copying", T=args.L, K=10, layout="B")
    marks = checkpoints(args.seed_steps, args.every)
    curves = {"theirs": [], "ours": []}
    for seed in range(args.seeds):
        mod = load_example(args.geotorch, args.L, args.hidden)
        mod.batch_size = args.batch
        torch.manual_seed(seed)
        theirs = mod.Model(8, args.hidden)
        if args.no_input_bias:  # the suite's models have none
            with torch.no_grad():
                theirs.rnn.input_kernel.bias.zero_()
            theirs.rnn.input_kernel.bias.requires_grad_(False)
        o_t = optimizers(*split(theirs, theirs.rnn.recurrent_kernel), args.lr, args.lr_orth)
        ours = suite_model(args.hidden, seed)
        o_o = optimizers(*split(ours, ours.transition), args.lr, args.lr_orth)
        ct, co = [], []
        for step in range(args.seed_steps):
            bx, by = mod.copy_data(args.batch)
            loss = theirs.loss(theirs(torch.nn.functional.one_hot(bx, 10).float()), by)
            o_t.zero_grad()
            loss.backward()
            o_t.step()
            x, y = task.train_batch(step + 1, args.batch, seed)
            loss_o = task.loss(ours(x), y)
            o_o.zero_grad()
            loss_o.backward()
            o_o.step()
            if step in marks:
                ct.append(loss.item())
                co.append(loss_o.item())
        curves["theirs"].append(ct)
        curves["ours"].append(co)
        print(f"  seed {seed}: final loss geotorch example {ct[-1]:.4f}, suite {co[-1]:.4f}", file=sys.stderr)
    rows = spread_rows(marks, curves["theirs"], curves["ours"], "theirs")
    return {"part": "seeds", "seeds": args.seeds, "steps": args.seed_steps, "rows": rows,
            "input_bias": not args.no_input_bias}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--geotorch", type=Path, required=True, help="checkout of github.com/lezcano/geotorch")
    p.add_argument("--part", choices=["same", "seeds", "both"], default="both")
    p.add_argument("--L", type=int, default=100)
    p.add_argument("--hidden", type=int, default=190)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-orth", type=float, default=2e-4)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--seed-steps", type=int, default=200)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--no-input-bias", action="store_true", help="part 'seeds': hold the example's input bias "
                   "at zero, as the suite's models have none")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if not (args.geotorch / "examples" / "copying_problem.py").is_file():
        print(f"twin_geotorch: error: {args.geotorch} holds no examples/copying_problem.py; pass a checkout of "
              "geotorch's repository", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    results, t0 = [], time.time()
    if args.part in ("same", "both"):
        r = same(args)
        results.append(r)
        print(f"same init, same batches, float64, {r['steps']} steps: loss {r['first_loss'][0]:.6f} -> "
              f"{r['last_loss'][0]:.6f}")
        for k, v in r["max_abs_diff"].items():
            print(f"  max |example - suite| {k:<8} {v:.2e}")
    if args.part in ("seeds", "both"):
        r = seeds(args)
        results.append(r)
        print(f"own init and data, float32, {r['seeds']} seeds x {r['steps']} steps: training loss")
        print("  step   example mean ± std     suite mean ± std     within spread")
        for row in r["rows"]:
            print(f"  {row['step']:>4}   {row['theirs_mean']:.4f} ± {row['theirs_std']:.4f}     "
                  f"{row['suite_mean']:.4f} ± {row['suite_std']:.4f}     {row['within_spread']}")
    print(f"({time.time() - t0:.0f} s)", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
