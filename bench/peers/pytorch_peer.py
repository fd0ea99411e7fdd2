#!/usr/bin/env python3
"""PyTorch on streamgrad's benchmark workloads (optional peer, run by run.mjs when `torch` imports).

Same sizes, losses, optimizers and batch sizes as bench/workloads.ts, and the same data
generator (xorshift32 + sines, ported from shared/anchors/common.mjs). One training step
per batch: forward, loss, zero_grad, backward, optimizer.step — on tensors sliced from
data already in memory. float64 by default (streamgrad's precision), --dtype float32 too.

    python3 pytorch_peer.py --workload all --dtype float64 --threads 1 [--reps N] [--quick]

Prints one JSON line per workload, with samples per second of wall time and of this
process's CPU time (steadier on a shared machine), and which BLAS torch calls (`blas`:
threadpoolctl's report when it is installed, else the libraries mapped into the process);
it refuses to run on anything but OpenBLAS unless --any-blas. On Debian (`apt-get install python3-torch`, 1.13) torch
calls the system BLAS: install libopenblas0-pthread, and run with OPENBLAS_CORETYPE unset and
OPENBLAS_NUM_THREADS=1 (torch.set_num_threads does not reach OpenBLAS's own thread pool).
"""
import argparse, json, math, os, statistics, sys, time

import torch
import torch.nn.functional as F

WORKLOADS = {
    'w1': dict(sizes=[8, 32, 32, 1], loss='mse', opt=('sgd', 0.01), batch=1, n=100_000, quick=2_000),
    'w2': dict(sizes=[16, 64, 64, 4], loss='mse', opt=('adam', 1e-3), batch=32, n=160_000, quick=1_280),
    'w3': dict(sizes=[64, 256, 256, 10], loss='cross_entropy', opt=('momentum', 0.01), batch=64, n=12_800, quick=256),
}
FLOPS = {'w1': 7_872, 'w2': 32_256, 'w3': 506_880}


def make_rng(seed):
    s = (seed & 0xFFFFFFFF) or 1
    def rng():
        nonlocal s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        return s / 4294967296
    return rng


def make_data(name, n):
    w = WORKLOADS[name]
    nin, nout = w['sizes'][0], w['sizes'][-1]
    rng = make_rng(12345)
    X = [[0.0] * nin for _ in range(n)]
    Y = [[0.0] * nout for _ in range(n)]
    labels = [0] * n
    S = [[math.sin(1 + 64 * c + i) for i in range(nin)] for c in range(nout)]
    for s in range(n):
        x = X[s]
        for i in range(nin):
            x[i] = 2 * rng() - 1
        if w['loss'] == 'mse':
            for k in range(nout):
                y = sum(math.sin((k + 1) * v) for v in x)
                if name == 'w2':
                    y /= 4
                Y[s][k] = y + 0.02 * (rng() - 0.5)
        else:
            best, arg = -math.inf, 0
            for c in range(nout):
                z = 0.0
                for i in range(nin):
                    z += S[c][i] * x[i]
                if z > best:
                    best, arg = z, c
            labels[s] = arg
            Y[s][arg] = 1.0
    return X, Y, labels


def run(name, X, Y, labels, n, dtype):
    w = WORKLOADS[name]
    torch.manual_seed(777)
    sizes, layers = w['sizes'], []
    for l in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[l], sizes[l + 1]))
        if l + 2 < len(sizes):
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers).to(dtype)
    kind, lr = w['opt']
    opt = (torch.optim.SGD(model.parameters(), lr=lr) if kind == 'sgd'
           else torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9) if kind == 'momentum'
           else torch.optim.Adam(model.parameters(), lr=lr))
    Xt = torch.tensor(X[:n], dtype=dtype)
    target = torch.tensor(Y[:n], dtype=dtype) if w['loss'] == 'mse' else torch.tensor(labels[:n], dtype=torch.long)
    B = w['batch']
    steps = math.ceil(n / B)
    from90 = int(steps * 0.9)
    loss_sum, loss_count = 0.0, 0
    t0, c0 = time.perf_counter(), time.process_time()
    for s in range(steps):
        xb, yb = Xt[s * B:(s + 1) * B], target[s * B:(s + 1) * B]
        out = model(xb)
        loss = F.mse_loss(out, yb) if w['loss'] == 'mse' else F.cross_entropy(out, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if s >= from90:
            loss_sum += loss.item()
            loss_count += 1
    return time.perf_counter() - t0, loss_sum / loss_count, time.process_time() - c0


def blas_info():
    """Which BLAS torch calls: threadpoolctl's report when it is installed, else the BLAS
    libraries mapped into this process (after a matmul has loaded them)."""
    torch.ones(64, 64, dtype=torch.float64) @ torch.ones(64, 64, dtype=torch.float64)
    try:
        from threadpoolctl import threadpool_info
        pools = [p for p in threadpool_info() if p.get('user_api') == 'blas']
        if pools:
            p = pools[0]
            return dict(source='threadpoolctl', internal_api=p.get('internal_api'), version=p.get('version'),
                        architecture=p.get('architecture'), threads=p.get('num_threads'), filepath=p.get('filepath'))
    except ImportError:
        pass
    with open('/proc/self/maps') as f:
        libs = sorted({line.split()[-1] for line in f if 'blas' in line.lower() and line.split()[-1].startswith('/')})
    real = [os.path.realpath(l) for l in libs]
    api = 'openblas' if any('openblas' in l for l in real) else 'reference' if real else 'unknown'
    return dict(source='/proc/self/maps', internal_api=api, filepath=real[0] if real else None)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--workload', default='all')
    p.add_argument('--dtype', default='float64', choices=['float64', 'float32'])
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--reps', type=int, default=5)
    p.add_argument('--quick', action='store_true')
    p.add_argument('--any-blas', action='store_true', help='run even when torch does not call OpenBLAS')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    blas = blas_info()
    # only on OpenBLAS: Debian's torch otherwise calls the reference BLAS, ~10x slower than it is
    if blas.get('internal_api') != 'openblas' and not a.any_blas:
        print(f"pytorch_peer.py: torch calls {blas.get('internal_api')} BLAS ({blas.get('filepath')}), not OpenBLAS: "
              'apt-get install libopenblas0-pthread (or pass --any-blas)', file=sys.stderr)
        sys.exit(3)
    dtype = getattr(torch, a.dtype)
    names = list(WORKLOADS) if a.workload == 'all' else [a.workload]
    budget = 0.3 if a.quick else 2.0
    for name in names:
        w = WORKLOADS[name]
        full = w['quick'] if a.quick else w['n']
        X, Y, labels = make_data(name, full)
        probe = min(full, max(w['batch'] * 20, 200 - 200 % w['batch']))
        run(name, X, Y, labels, probe, dtype)
        seconds, _, _ = run(name, X, Y, labels, probe, dtype)
        n = min(full, max(w['batch'] * 10, int(probe / seconds * budget) // w['batch'] * w['batch']))
        run(name, X, Y, labels, n, dtype)  # warm-up
        runs, cpu_runs, loss = [], [], math.nan
        for _ in range(a.reps):
            seconds, loss, cpu = run(name, X, Y, labels, n, dtype)
            runs.append(n / seconds)
            cpu_runs.append(n / cpu)
        print(json.dumps(dict(peer=f'torch-{a.dtype}', torch=torch.__version__, threads=torch.get_num_threads(), workload=name,
                              batch=w['batch'], n=n, reps=a.reps, samples_per_s=statistics.median(runs), runs=runs, loss=loss,
                              samples_per_cpu_s=statistics.median(cpu_runs), cpu_runs=cpu_runs,
                              dtype=a.dtype, blas=blas)), flush=True)


if __name__ == '__main__':
    main()
