"""Twin check of the suite's expRNN and dtriv against the authors' code, on the copying task.

    python benchmarks/twin_exprnn.py --authors PATH/TO/expRNN --mode exprnn
    python benchmarks/twin_exprnn.py --authors PATH/TO/expRNN --mode dtriv --K 10 --M 3

PATH/TO/expRNN is a checkout of https://github.com/Lezcano/expRNN (the code of Lezcano-Casado &
Martinez-Rubio, ICML 2019, arXiv:1901.08428, and of dynamic trivializations, NeurIPS 2019,
arXiv:1909.09501). It is imported at run time; nothing of it is part of this repository. Its
``1_copying.py`` is imported as a module (its ``main()`` does not run), so the model, the
initializers, the data function and the parameter split are the authors' own.

Part 1, "same": float64, both sides start from the same weights (the authors' init, loaded into the
suite's model) and see the same batches; the script reports the largest differences in logits, loss,
gradients (per parameter) and parameters over ``--steps`` optimizer steps.
Part 2, "seeds": float32, each side with its own init and its own data stream (the authors' numpy
``copying_data``; the suite's seeded task), ``--seeds`` seeds each; the script reports the mean and
standard deviation of the training loss at checkpoints, side by side.

Part 3, "speed" (``--part speed``): the training step of each side on the same setting (float32, the
authors' own map, model and RMSprop; the suite's ``suite.runner.train_step`` with its data), the two
interleaved round by round in one process, and the ratio suite / authors; beside them, the suite's
floor for the case (``suite.speed.floor_fn``: the step's unavoidable GEMMs and the map), which bounds
how low that ratio can go. The data (batch creation,
one-hot) is inside each side's step, as in each side's training loop. Both sides share the process's
allocator: with the suite's setting (``suite.memory``) by default, glibc's own with SUITE_MALLOC=system.

Notes on the authors' code under current torch: it calls ``torch.solve``, removed in torch 2; the
script installs ``torch.solve(B, A) = (torch.linalg.solve(A, B), None)`` first. Their ``expm`` is a
Pade approximant tuned for float32; ``--expm suite`` hands their layer the suite's own exponential
(``models.skew.expm``, the same map on both sides: what a float64 comparison of the rest needs) and
``--expm torch`` hands it ``torch.linalg.matrix_exp`` (the layer takes the map as an argument).
With ``--rebase nograd`` (default for the "same" part) the authors' dynamic-trivialization counters
are advanced by a ``torch.no_grad()`` read of the layer after each optimizer step, as their MNIST and
TIMIT scripts do when they evaluate; ``--rebase forward`` leaves the base change inside the next
training forward, as their copying script does (see docs/fidelity.md for what that changes).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_spread import checkpoints, spread_rows  # noqa: E402  (benchmarks/, this script's folder)

from suite.config import RunConfig  # noqa: E402
from suite.runner import make_optimizers, train_step  # noqa: E402
from suite.seeding import seeded  # noqa: E402


def load_authors(path: Path, mode: str, K: int, M: int, L: int, n: int, batch: int, expm: str):
    """The authors' copying module, imported with the arguments of one run."""
    # removed in torch 2 (the name remains, raising); same semantics: solve A X = B
    torch.solve = lambda B, A: (torch.linalg.solve(A, B), None)
    sys.path.insert(0, str(path))
    argv = sys.argv
    sys.argv = ["1_copying.py", "--mode", mode, "--K", str(K), "--L", str(L), "--hidden_size", str(n),
                "--batch_size", str(batch), "--init", "henaff"]
    try:
        spec = importlib.util.spec_from_file_location("authors_copying", path / "1_copying.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.argv = argv
    if mode == "dtriv":
        mod.mode = ("dynamic", K, M)
    if expm == "torch":
        mod.param = torch.linalg.matrix_exp
    elif expm == "suite":
        from suite.models.skew import expm as suite_expm

        mod.param = suite_expm
    return mod


def authors_model(mod, n: int):
    model = mod.Model(9, n)
    non_orth, orth = mod.get_parameters(model)
    return model, list(non_orth), list(orth)


def suite_model(mode: str, n: int, K: int, M: int, seed: int = 0):
    from suite.registry import create_model

    opts = {"readout_init": "kaiming", "init": "henaff", "engine": "auto"}
    if mode == "dtriv":
        opts.update(K=K, project_every=M)
    with seeded(seed):
        return create_model(mode, d_in=10, d_out=9, output="sequence", hidden=n, **opts)


def load_weights_into_suite(suite, authors, mode: str) -> None:
    """The authors' weights into the suite's model: same free entries of A (upper triangle), same base."""
    rk = authors.rnn.recurrent_kernel
    n = rk.A.shape[0]
    iu = torch.triu_indices(n, n, 1)
    with torch.no_grad():
        t = suite.transition
        t.a.copy_(rk.A[iu[0], iu[1]])
        t.base.copy_(rk.base)
        t.base_changes = 0
        suite.input.weight.copy_(authors.rnn.input_kernel.weight)
        suite.act.bias.copy_(authors.rnn.nonlinearity.b)
        suite.readout.weight.copy_(authors.lin.weight)
        suite.readout.bias.copy_(authors.lin.bias)
    if mode == "dtriv":
        t.rebase()  # the suite's base change before the first step (the authors': at the first forward)


def advance_authors(authors) -> None:
    """Read the authors' layer under no_grad: advances their dtriv counters, as an evaluation does."""
    with torch.no_grad():
        authors.rnn.recurrent_kernel.B  # noqa: B018


def onehot(tokens: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.one_hot(tokens, 10).to(torch.get_default_dtype())


def same(args) -> dict:
    torch.set_default_dtype(torch.float64)
    mod = load_authors(args.authors, args.mode, args.K, args.M, args.L, args.hidden, args.batch, args.expm)
    torch.manual_seed(0)
    np.random.seed(0)
    authors, a_rest, a_orth = authors_model(mod, args.hidden)
    suite = suite_model(args.mode, args.hidden, args.K, args.M)
    load_weights_into_suite(suite, authors, args.mode)
    cfg = RunConfig(model=args.mode, task="copying", lr=args.lr, orth_lr=args.lr / 10, rmsprop_alpha=0.99)
    s_opts = make_optimizers(suite, cfg)
    a_opts = [torch.optim.RMSprop(a_rest, args.lr), torch.optim.RMSprop(a_orth, lr=args.lr / 10)]
    rk = suite.transition
    n = args.hidden
    iu = torch.triu_indices(n, n, 1)
    if args.mode == "dtriv" and args.rebase == "nograd":
        advance_authors(authors)
    x_all, y_all = mod.copying_data(args.L, 10, args.batch * args.steps)
    worst = {"logits": 0.0, "loss": 0.0, "grad A": 0.0, "grad U": 0.0, "grad b": 0.0, "grad readout": 0.0,
             "A": 0.0, "base": 0.0, "U": 0.0, "readout": 0.0}
    losses = []
    for step in range(args.steps):
        x = onehot(x_all[step * args.batch:(step + 1) * args.batch])
        y = y_all[step * args.batch:(step + 1) * args.batch]
        la = authors(x)
        ls = suite(x)
        loss_a, loss_s = authors.loss(la, y), torch.nn.functional.cross_entropy(ls.reshape(-1, 9), y.reshape(-1))
        for o in a_opts + s_opts:
            o.zero_grad()
        loss_a.backward()
        loss_s.backward()
        ak = authors.rnn.recurrent_kernel
        d = {"logits": (la - ls).abs().max(), "loss": (loss_a - loss_s).abs(),
             "grad A": (ak.A.grad[iu[0], iu[1]] - rk.a.grad).abs().max(),
             "grad U": (authors.rnn.input_kernel.weight.grad - suite.input.weight.grad).abs().max(),
             "grad b": (authors.rnn.nonlinearity.b.grad - suite.act.bias.grad).abs().max(),
             "grad readout": (authors.lin.weight.grad - suite.readout.weight.grad).abs().max()}
        for o in a_opts + s_opts:
            o.step()
        suite.after_step(step + 1)
        if args.mode == "dtriv" and args.rebase == "nograd":
            advance_authors(authors)
        d.update({"A": (ak.A[iu[0], iu[1]] - rk.a).abs().max(), "base": (ak.base - rk.base).abs().max(),
                  "U": (authors.rnn.input_kernel.weight - suite.input.weight).abs().max(),
                  "readout": (authors.lin.weight - suite.readout.weight).abs().max()})
        for k, v in d.items():
            worst[k] = max(worst[k], float(v.detach()))
        if step == 0:
            first = {k: float(v.detach()) for k, v in d.items()}
        losses.append((loss_a.item(), loss_s.item()))
    return {"part": "same", "mode": args.mode, "expm": args.expm, "rebase": args.rebase, "steps": args.steps,
            "first_loss": losses[0], "last_loss": losses[-1], "max_abs_diff": worst, "first_step": first,
            "base_changes": getattr(rk, "base_changes", None)}


def seeds(args) -> dict:
    torch.set_default_dtype(torch.float32)
    from suite.registry import create_task

    marks = checkpoints(args.seed_steps, args.every)
    curves = {"authors": [], "suite": []}
    task = create_task("copying", T=args.L, K=10, layout="B")
    cfg = RunConfig(model=args.mode, task="copying", lr=args.lr, orth_lr=args.lr / 10, rmsprop_alpha=0.99,
                    batch_size=args.batch)
    for seed in range(args.seeds):
        mod = load_authors(args.authors, args.mode, args.K, args.M, args.L, args.hidden, args.batch, "authors")
        torch.manual_seed(seed)
        np.random.seed(seed)
        authors, a_rest, a_orth = authors_model(mod, args.hidden)
        a_opts = [torch.optim.RMSprop(a_rest, args.lr), torch.optim.RMSprop(a_orth, lr=args.lr / 10)]
        x_all, y_all = mod.copying_data(args.L, 10, args.batch * args.seed_steps)
        suite = suite_model(args.mode, args.hidden, args.K, args.M, seed=seed)
        s_opts = make_optimizers(suite, cfg)
        ca, cs = [], []
        for step in range(args.seed_steps):
            x = onehot(x_all[step * args.batch:(step + 1) * args.batch])
            y = y_all[step * args.batch:(step + 1) * args.batch]
            loss = authors.loss(authors(x), y)
            for o in a_opts:
                o.zero_grad()
            loss.backward()
            for o in a_opts:
                o.step()
            loss_s = train_step(suite, s_opts, task, *task.train_batch(step + 1, args.batch, seed), step + 1)
            if step in marks:
                ca.append(loss.item())
                cs.append(loss_s.item())
        curves["authors"].append(ca)
        curves["suite"].append(cs)
        print(f"  seed {seed}: final loss authors {ca[-1]:.4f}, suite {cs[-1]:.4f}", file=sys.stderr)
    rows = spread_rows(marks, curves["authors"], curves["suite"], "authors")
    return {"part": "seeds", "mode": args.mode, "seeds": args.seeds, "steps": args.seed_steps, "rows": rows}


def speed(args) -> dict:
    torch.set_default_dtype(torch.float32)
    from suite.memory import keep_freed_memory
    from suite.registry import create_task
    from suite.speed import SpeedCase, floor_fn, measure

    malloc = keep_freed_memory()  # for both sides, as a training process of the suite runs (SUITE_MALLOC)
    mod = load_authors(args.authors, args.mode, args.K, args.M, args.L, args.hidden, args.batch, "authors")
    torch.manual_seed(0)
    np.random.seed(0)
    authors, a_rest, a_orth = authors_model(mod, args.hidden)
    a_opts = [torch.optim.RMSprop(a_rest, args.lr), torch.optim.RMSprop(a_orth, lr=args.lr / 10)]
    x_all, y_all = mod.copying_data(args.L, 10, args.batch * 4)
    x_buf = torch.empty(args.batch, args.L + 20, 10)
    task = create_task("copying", T=args.L, K=10, layout="B")
    cfg = RunConfig(model=args.mode, task="copying", lr=args.lr, orth_lr=args.lr / 10, rmsprop_alpha=0.99,
                    batch_size=args.batch)
    suite = suite_model(args.mode, args.hidden, args.K, args.M)
    s_opts = make_optimizers(suite, cfg)
    count = {"authors": 0, "suite": 0}

    def authors_step():  # the body of the authors' training loop, printing left out
        i = count["authors"] % 4
        count["authors"] += 1
        mod.onehot(x_buf, x_all[i * args.batch:(i + 1) * args.batch])
        logits = authors(x_buf)
        loss = authors.loss(logits, y_all[i * args.batch:(i + 1) * args.batch])
        for o in a_opts:
            o.zero_grad()
        loss.backward()
        for o in a_opts:
            o.step()
        loss.item()

    def suite_step():
        count["suite"] += 1
        x, y = task.train_batch(count["suite"], args.batch, 0)
        train_step(suite, s_opts, task, x, y, count["suite"]).item()

    # the suite's floor for this case (its unavoidable GEMMs and the map, suite.speed.floor_fn)
    floor = floor_fn(suite, SpeedCase(n=args.hidden, T=args.L + 20, B=args.batch))
    med = measure({"authors": authors_step, "suite": suite_step, "floor": floor}, rounds=args.rounds, warmup=3)
    return {"part": "speed", "mode": args.mode, "threads": torch.get_num_threads(), "L": args.L,
            "hidden": args.hidden, "batch": args.batch, "rounds": args.rounds,
            "malloc": "kept" if malloc else "system", "authors_ms": med["authors"] * 1e3,
            "suite_ms": med["suite"] * 1e3,
            "floor_ms": med["floor"] * 1e3, "ratio": med["suite"] / med["authors"],
            "floor_ratio": med["floor"] / med["authors"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--authors", type=Path, required=True, help="checkout of github.com/Lezcano/expRNN")
    p.add_argument("--mode", choices=["exprnn", "dtriv"], default="exprnn")
    p.add_argument("--part", choices=["same", "seeds", "both", "speed"], default="both")
    p.add_argument("--K", type=int, default=100, help="dtriv: steps between base changes")
    p.add_argument("--M", type=int, default=30, help="dtriv: base changes between projections onto O(n)")
    p.add_argument("--L", type=int, default=100, help="copying delay T (the authors' L)")
    p.add_argument("--hidden", type=int, default=190)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-4, help="non-orthogonal rate; the orthogonal one is lr/10")
    p.add_argument("--steps", type=int, default=100, help="part 'same': optimizer steps")
    p.add_argument("--expm", choices=["suite", "torch", "authors"], default="suite",
                   help="part 'same': the map given to the authors' layer")
    p.add_argument("--rebase", choices=["nograd", "forward"], default="nograd")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--seed-steps", type=int, default=200)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--rounds", type=int, default=20, help="part 'speed': interleaved rounds (median)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, help="write the results as JSON here")
    args = p.parse_args(argv)
    if not (args.authors / "1_copying.py").is_file():
        print(f"twin_exprnn: error: {args.authors} holds no 1_copying.py; pass a checkout of the authors' "
              "expRNN repository", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    results, t0 = [], time.time()
    if args.part in ("same", "both"):
        r = same(args)
        results.append(r)
        print(f"same init, same batches, float64, {r['steps']} steps ({args.mode}, expm={args.expm}, "
              f"rebase={args.rebase}): loss {r['first_loss'][0]:.6f} -> {r['last_loss'][0]:.6f}")
        print("  max |authors - suite|   over all steps   at step 1")
        for k, v in r["max_abs_diff"].items():
            print(f"  {k:<22} {v:10.2e}       {r['first_step'][k]:.2e}")
    if args.part in ("seeds", "both"):
        r = seeds(args)
        results.append(r)
        print(f"own init and data, float32, {r['seeds']} seeds x {r['steps']} steps ({args.mode}): training loss")
        print("  step   authors mean ± std     suite mean ± std     within spread")
        for row in r["rows"]:
            print(f"  {row['step']:>4}   {row['authors_mean']:.4f} ± {row['authors_std']:.4f}     "
                  f"{row['suite_mean']:.4f} ± {row['suite_std']:.4f}     {row['within_spread']}")
    if args.part == "speed":
        r = speed(args)
        results.append(r)
        print(f"training step, copying L={r['L']}, n={r['hidden']}, batch {r['batch']}, {args.mode}, float32, "
              f"{r['threads']} threads, freed memory {r['malloc']}, median of {r['rounds']} interleaved rounds: "
              f"authors {r['authors_ms']:.1f} ms, suite {r['suite_ms']:.1f} ms, suite / authors = {r['ratio']:.2f}; "
              f"the suite's floor {r['floor_ms']:.1f} ms, floor / authors = {r['floor_ratio']:.2f}")
    print(f"({time.time() - t0:.0f} s)", file=sys.stderr)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
