"""Quantization-aware training with cfq.torch on scikit-learn's digits.

    pip install cfq[torch] scikit-learn
    python examples/qat_digits_torch.py

A small MLP (64 -> 64 -> 32 -> 10) is trained in float, then fine-tuned
with TensorFlow's fake quantization (cfq.torch.FakeQuant) at 8 and at 4 bits,
as tfmot's default QAT recipe does it: weights per output channel with
``last_value`` ranges, symmetric and narrow range; activations (the input,
each hidden layer after its ReLU, the logits) with ``moving_average``
ranges.  Prints the float, 8-bit and 4-bit test accuracies and checks that a
state_dict round trip gives identical eval outputs.  About 10 s (one thread).
"""
import copy
import time

import numpy as np
import torch
from torch import nn

import cfq.torch as cfqt

# tfmot's moving averages use decay 0.999, made for long trainings; this one
# has about 1,000 QAT steps, so its activation ranges settle with 0.99.
EMA_DECAY = 0.99
SIZES = (64, 64, 32, 10)


def load_digits(seed=0):
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split
    x, y = sk_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    return (torch.from_numpy(xtr), torch.from_numpy(ytr), torch.from_numpy(xte), torch.from_numpy(yte))


class QuantLinear(nn.Linear):
    """nn.Linear whose weight goes through a per-output-channel quantizer."""

    def __init__(self, fan_in, fan_out, num_bits=None):
        super().__init__(fan_in, fan_out)
        self.weight_quant = None
        if num_bits is not None:
            self.weight_quant = cfqt.FakeQuant(num_bits, narrow_range=True, tracking="last_value",
                                               symmetric=True, axis=0, channels=fan_out)

    def forward(self, x):
        w = self.weight if self.weight_quant is None else self.weight_quant(self.weight)
        return nn.functional.linear(x, w, self.bias)


def mlp(num_bits=None):
    """The MLP; with num_bits, every weight and activation fake-quantized."""
    def act():
        if num_bits is None:
            return nn.Identity()
        return cfqt.FakeQuant(num_bits, tracking="moving_average", ema_decay=EMA_DECAY)

    layers = [act()]
    for k, (fan_in, fan_out) in enumerate(zip(SIZES, SIZES[1:])):
        layers.append(QuantLinear(fan_in, fan_out, num_bits))
        if k < len(SIZES) - 2:
            layers.append(nn.ReLU())
        layers.append(act())
    return nn.Sequential(*layers)


def train(model, data, epochs, lr, seed=0):
    xtr, ytr, _, _ = data
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xtr), generator=gen).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xtr[idx]), ytr[idx]).backward()
            opt.step()
        sched.step()
    return model


@torch.no_grad()
def accuracy(model, data):
    _, _, xte, yte = data
    model.eval()
    return (model(xte).argmax(1) == yte).float().mean().item()


def quantized_copy(float_model, num_bits):
    """A QAT model starting from the float model's weights."""
    q = mlp(num_bits)
    q.load_state_dict(float_model.state_dict(), strict=False)  # the quantizers keep their initial ranges
    return q


def main():
    t0 = time.perf_counter()
    # Layers this small gain nothing from intra-op threads, and OpenMP's
    # spinning workers slow them down badly when the other cores are busy.
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = load_digits()
    float_model = train(mlp(), data, epochs=40, lr=3e-3)
    results = {"float": accuracy(float_model, data)}
    for bits, epochs in ((8, 15), (4, 30)):
        torch.manual_seed(bits)
        q = train(quantized_copy(float_model, bits), data, epochs=epochs, lr=1e-3, seed=bits)
        results[f"{bits}-bit"] = accuracy(q, data)
        if bits == 4:
            reloaded = mlp(bits)
            reloaded.load_state_dict(copy.deepcopy(q.state_dict()))
            reloaded.eval()
            with torch.no_grad():
                same = torch.equal(q(data[2]).view(torch.int32), reloaded(data[2]).view(torch.int32))
    for name, acc in results.items():
        print(f"{name:>6} test accuracy: {acc:.4f}")
    print(f"state_dict round trip (4-bit model): identical eval outputs: {same}")
    print(f"({time.perf_counter() - t0:.1f} s, torch {torch.__version__}, {torch.get_num_threads()} threads)")
    return results, same


if __name__ == "__main__":
    main()
