#!/usr/bin/env python3
"""PyTorch's default recipes on the learning-quality bench's streams (run by bench/quality.ts).

Reads one JSON file (argv[1]) that bench/quality.ts writes: for every stream the samples
exactly as streamgrad's online normaliser standardised them (each with the statistics of
the samples before it), the targets, and for a regression the mean and scale that map
each prediction back to user units; the seeds; the recipes. The preprocessing is not
re-implemented here: both sides train on the very same numbers, in the same order.

Each recipe is PyTorch's default for the architecture: nn.Linear layers with their own
initialisation (weights and biases U(±1/√fan_in)), seeded with torch.manual_seed(seed),
and an optimizer at PyTorch's default learning rate (Adam 1e-3; SGD 1e-3, its default
since PyTorch 2.x; 1.13 has none). Batch 1, one pass: each sample is predicted first
(prequential, test-then-train), then learned. float64, as streamgrad computes. A run whose
predictions turn non-finite is reported as diverged (its MAE is infinite).

Prints one JSON object: {"torch": version, "results": {stream: {recipe: [metric per seed]}}}.
"""
import json, math, sys

import torch
import torch.nn.functional as F


def build(sizes, activations):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        act = activations[i]
        if act == 'relu':
            layers.append(torch.nn.ReLU())
        elif act == 'tanh':
            layers.append(torch.nn.Tanh())
        elif act == 'sigmoid':
            layers.append(torch.nn.Sigmoid())
        elif act in ('linear', 'softmax'):
            pass  # softmax: folded into cross_entropy on the logits
        else:
            raise SystemExit(f'quality.py: activation {act} not supported')
    return torch.nn.Sequential(*layers).double()


def run(stream, recipe, seed):
    torch.manual_seed(seed)
    model = build(stream['sizes'], stream['activations'])
    kind, lr = recipe['optimizer'], recipe['lr']
    opt = torch.optim.SGD(model.parameters(), lr=lr) if kind == 'sgd' else torch.optim.Adam(model.parameters(), lr=lr)
    X = torch.tensor(stream['x'], dtype=torch.float64)
    classify = stream['task'] == 'classify'
    if classify:
        Y = torch.tensor(stream['y'], dtype=torch.long)
    else:
        Y = torch.tensor(stream['yz'], dtype=torch.float64).reshape(-1, 1)
    raw, mean, scale = stream['y'], stream['mean'], stream['scale']
    score = 0.0
    for i in range(X.shape[0]):
        out = model(X[i:i + 1])
        if classify:
            o = out[0]
            if bool(torch.isfinite(o).all()) and int(torch.argmax(o)) == raw[i]:
                score += 1
            loss = F.cross_entropy(out, Y[i:i + 1])
        else:
            prediction = float(out[0, 0]) * scale[i] + mean[i]
            if not math.isfinite(prediction):
                return math.inf
            score += abs(prediction - raw[i])
            loss = F.mse_loss(out, Y[i:i + 1])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return score / X.shape[0]


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    torch.set_num_threads(1)
    results = {}
    for stream in job['streams']:
        per = results.setdefault(stream['name'], {})
        for recipe in job['recipes']:
            # a stream's samples per seed (the simulated one is drawn with the seed; files are the same for all)
            per[recipe['name']] = [run({**stream, **stream['bySeed'][str(seed)]}, recipe, seed) for seed in job['seeds']]
    # JSON has no Infinity: a diverged run is null
    clean = {s: {r: [v if math.isfinite(v) else None for v in vs] for r, vs in per.items()} for s, per in results.items()}
    print(json.dumps({'torch': torch.__version__, 'results': clean}))


if __name__ == '__main__':
    main()
