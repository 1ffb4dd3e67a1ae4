#!/usr/bin/env python3
"""Generates tests/golden/ops.json: forward outputs and input gradients of every Loom op,
computed by PyTorch (python3-torch from Debian) on seeded random inputs.

Run with Debian's interpreter, which owns python3-torch:
    /usr/bin/python3 tools/gen_golden.py

Each case names an op configuration that tests/ops/op_cases.cpp implements with Loom's
API under the same name. The C++ tests compare Loom's forward output and its VJP (for the
stored cotangent) against these values, and reuse the inputs for finite-difference checks.
"""
import json
import os

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
g = torch.Generator().manual_seed(1234)


def make(shape, kind):
    if kind == "normal":
        return torch.randn(shape, generator=g)
    if kind == "positive":
        return torch.rand(shape, generator=g) * 1.5 + 0.5
    if kind == "away0":  # away from the kink of relu/abs
        x = torch.rand(shape, generator=g) * 1.8 + 0.2
        s = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
        return x * s
    if kind == "distinct":  # no ties (max/min/pool)
        n = 1
        for d in shape:
            n *= d
        return (torch.randperm(max(n, 1), generator=g)[:n].float() * 0.37 - n * 0.15).reshape(shape)
    if kind == "clampsafe":  # away from the bounds +-0.5
        x = torch.randn(shape, generator=g)
        return torch.where((x.abs() - 0.5).abs() < 0.1, x + 0.25 * torch.sign(x), x)
    if kind == "bool":
        return torch.rand(shape, generator=g) < 0.5
    if kind.startswith("int"):
        hi = int(kind[3:])
        return torch.randint(0, hi, shape, generator=g)
    raise ValueError(kind)


CASES = []


def case(name, fn, inputs, smooth=False):
    CASES.append((name, fn, inputs, smooth))


N, P, A, D = "normal", "positive", "away0", "distinct"

# elementwise unary
case("neg", lambda x: -x, [((3, 4), N)], True)
case("exp", torch.exp, [((3, 4), N)], True)
case("log", torch.log, [((3, 4), P)], True)
case("sqrt", torch.sqrt, [((3, 4), P)], True)
case("rsqrt", torch.rsqrt, [((3, 4), P)], True)
case("tanh", torch.tanh, [((3, 4), N)], True)
case("sigmoid", torch.sigmoid, [((3, 4), N)], True)
case("relu", torch.relu, [((3, 4), A)])
case("gelu", F.gelu, [((3, 4), N)], True)
case("abs", torch.abs, [((3, 4), A)])
case("erf", torch.erf, [((3, 4), N)], True)
case("clamp", lambda x: torch.clamp(x, -0.5, 0.5), [((4, 5), "clampsafe")])
case("exp_empty", torch.exp, [((0, 3), N)], True)
# binary with broadcasting, size-1 and empty dims
case("add", torch.add, [((3, 4), N), ((4,), N)], True)
case("add_size1", torch.add, [((2, 1, 3), N), ((4, 1), N)], True)
case("add_empty", torch.add, [((0, 3), N), ((3,), N)], True)
case("sub", torch.sub, [((3, 4), N), ((3, 1), N)], True)
case("mul", torch.mul, [((1, 3), N), ((2, 1), N)], True)
case("div", torch.div, [((3, 4), N), ((4,), P)], True)
case("pow", torch.pow, [((3, 4), P), ((4,), N)], True)
case("pow_scalar", lambda x: torch.pow(x, 3.0), [((3, 4), N)], True)
case("maximum", torch.maximum, [((3, 4), D), ((4,), D)])
case("minimum", torch.minimum, [((3, 4), D), ((4,), D)])
case("where", lambda c, a, b: torch.where(c, a, b), [((3, 4), "bool"), ((3, 4), N), ((4,), N)], True)
case("scalar_ops", lambda x: (2.0 * x + 1.0) / 3.0 - x * 0.5, [((3, 2), N)], True)
# reductions
case("sum_all", lambda x: x.sum(), [((3, 4), N)], True)
case("sum_axis1_keep", lambda x: x.sum(1, keepdim=True), [((3, 4), N)], True)
case("sum_axes02", lambda x: x.sum((0, 2)), [((2, 3, 4), N)], True)
case("sum_empty", lambda x: x.sum(0), [((0, 3), N)], True)
case("mean_axis0", lambda x: x.mean(0), [((3, 4), N)], True)
case("amax_axis1", lambda x: torch.amax(x, 1), [((3, 5), D)])
case("amin_all", lambda x: torch.amin(x), [((3, 5), D)])
case("logsumexp_axis1", lambda x: torch.logsumexp(x, 1), [((3, 5), N)], True)
case("var_axis1", lambda x: torch.var(x, 1), [((3, 5), N)], True)
case("softmax_last", lambda x: torch.softmax(x, -1), [((3, 5), N)], True)
case("softmax_axis0", lambda x: torch.softmax(x, 0), [((3, 5), N)], True)
case("log_softmax_last", lambda x: torch.log_softmax(x, -1), [((3, 5), N)], True)
# matmul
case("matmul_2d", torch.matmul, [((3, 4), N), ((4, 5), N)], True)
case("matmul_batched_broadcast", torch.matmul, [((2, 1, 3, 4), N), ((3, 4, 2), N)], True)
case("matmul_vec_mat", torch.matmul, [((4,), N), ((4, 3), N)], True)
case("matmul_mat_vec", torch.matmul, [((3, 4), N), ((4,), N)], True)
case("matmul_large", torch.matmul, [((37, 45), N), ((45, 33), N)], True)
# convolution and pooling
case("conv2d_pad1_bias", lambda x, w, b: F.conv2d(x, w, b, padding=1), [((2, 3, 7, 6), N), ((4, 3, 3, 3), N), ((4,), N)], True)
case("conv2d_s2_d2_g2", lambda x, w: F.conv2d(x, w, stride=2, padding=1, dilation=2, groups=2), [((1, 4, 9, 9), N), ((6, 2, 3, 3), N)], True)
case("conv2d_1x1", lambda x, w: F.conv2d(x, w), [((2, 3, 4, 5), N), ((5, 3, 1, 1), N)], True)
case("max_pool2d_k2", lambda x: F.max_pool2d(x, 2), [((2, 2, 6, 6), D)])
case("max_pool2d_k3_s2_p1", lambda x: F.max_pool2d(x, 3, 2, 1), [((1, 2, 7, 7), D)])
case("avg_pool2d_k2", lambda x: F.avg_pool2d(x, 2), [((2, 2, 6, 6), N)], True)
case("avg_pool2d_k3_s2_p1", lambda x: F.avg_pool2d(x, 3, 2, 1), [((1, 2, 7, 7), N)], True)
# nn functions
case("layer_norm_affine", lambda x, w, b: F.layer_norm(x, (8,), w, b), [((3, 8), N), ((8,), N), ((8,), N)], True)
case("layer_norm_2d", lambda x: F.layer_norm(x, (3, 4)), [((2, 3, 4), N)], True)
case("cross_entropy", lambda x, t: F.cross_entropy(x, t), [((4, 5), N), ((4,), "int5")], True)
case("cross_entropy_smooth", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), [((4, 5), N), ((4,), "int5")], True)
case("mse", F.mse_loss, [((3, 4), N), ((3, 4), N)], True)
# indexing
case("embedding", lambda w, i: F.embedding(i, w), [((6, 4), N), ((2, 3), "int6")], True)
case("index_select_axis1", lambda x, i: torch.index_select(x, 1, i), [((3, 5), N), ((4,), "int5")], True)
case("gather_axis1", lambda x, i: torch.gather(x, 1, i), [((3, 5), N), ((3, 2), "int5")], True)
case("concat_axis1", lambda a, b: torch.cat([a, b], 1), [((2, 3), N), ((2, 2), N)], True)
case("stack_axis0", lambda a, b: torch.stack([a, b], 0), [((2, 3), N), ((2, 3), N)], True)
case("split_part1", lambda x: torch.split(x, [1, 2], 1)[1], [((2, 3), N)], True)
# views
case("reshape", lambda x: x.reshape(2, 6), [((3, 4), N)], True)
case("permute", lambda x: x.permute(2, 0, 1), [((2, 3, 4), N)], True)
case("transpose_then_matmul", lambda x, y: x.transpose(0, 1) @ y, [((4, 3), N), ((4, 2), N)], True)
case("slice_step", lambda x: x[1:5:2], [((6, 4), N)], True)
case("expand", lambda x: x.expand(2, 3, 4), [((3, 1), N)], True)
case("squeeze_unsqueeze", lambda x: x.squeeze(1).unsqueeze(0), [((3, 1, 4), N)], True)
# appended cases (new draws come after the earlier ones, which keep their values)
case("relu_backward", lambda g, y: torch.ops.aten.threshold_backward(g, y, 0.0), [((3, 4), N), ((3, 4), A)])
case("conv2d_bias_relu", lambda x, w, b: torch.relu(F.conv2d(x, w, b, padding=1)),
     [((2, 3, 7, 6), N), ((16, 3, 3, 3), N), ((16,), N)])
case("max_pool2d_relu", lambda x: torch.relu(F.max_pool2d(x, 2)), [((2, 3, 6, 8), D)])
case("max_pool2d_backward",
     lambda x, g: torch.ops.aten.max_pool2d_with_indices_backward(
         g, x, [2, 2], [2, 2], [0, 0], [1, 1], False, F.max_pool2d(x, 2, return_indices=True)[1]),
     [((2, 3, 7, 9), D), ((2, 3, 3, 4), N)])
# conv2d_max_pool2d (one op) and its two adjoints; the adjoints' input z only fixes the
# argmax indices (max pooling of z, distinct values), so they are bilinear in the other two
# inputs: smooth, second derivatives checked.
case("conv2d_max_pool2d_relu", lambda x, w, b: F.max_pool2d(torch.relu(F.conv2d(x, w, b, padding=1)), 2),
     [((3, 3, 7, 6), N), ((5, 3, 3, 3), N), ((5,), N)])
case("conv2d_max_pool2d_k3s2p1_g2", lambda x, w: F.max_pool2d(F.conv2d(x, w, groups=2), 3, 2, 1),
     [((2, 4, 9, 8), N), ((6, 2, 3, 3), N)])


def _pool_grad(z, g):
    idx = F.max_pool2d(z, 2, return_indices=True)[1]
    return torch.ops.aten.max_pool2d_with_indices_backward(g, z, [2, 2], [2, 2], [0, 0], [1, 1], False, idx)


case("conv2d_pooled_backward_input",
     lambda z, g, w: torch.nn.grad.conv2d_input((2, 3, 6, 7), w, _pool_grad(z, g), padding=1),
     [((2, 4, 6, 7), D), ((2, 4, 3, 3), N), ((4, 3, 3, 3), N)], True)
case("conv2d_pooled_backward_weight",
     lambda x, z, g: torch.nn.grad.conv2d_weight(x, (4, 3, 3, 3), _pool_grad(z, g), padding=1),
     [((2, 3, 6, 7), N), ((2, 4, 6, 7), D), ((2, 4, 3, 3), N)], True)


def enc(t):
    t = t.detach()
    if t.dtype == torch.bool:
        return {"shape": list(t.shape), "dtype": "bool", "data": [bool(v) for v in t.flatten().tolist()]}
    if t.dtype in (torch.int64, torch.int32):
        return {"shape": list(t.shape), "dtype": "i64", "data": [int(v) for v in t.flatten().tolist()]}
    return {"shape": list(t.shape), "dtype": "f32", "data": [float(v) for v in t.float().flatten().tolist()]}


def main():
    out = []
    for name, fn, specs, smooth in CASES:
        xs = [make(s, k) for s, k in specs]
        for x in xs:
            if x.is_floating_point():
                x.requires_grad_(True)
        y = fn(*xs)
        ct = torch.randn(y.shape, generator=g)
        grads = [None] * len(xs)
        diff = [i for i, x in enumerate(xs) if x.is_floating_point()]
        if y.numel() > 0 and diff:
            gs = torch.autograd.grad(y, [xs[i] for i in diff], ct, allow_unused=True)
            for i, gr in zip(diff, gs):
                grads[i] = enc(gr if gr is not None else torch.zeros_like(xs[i]))
        out.append({
            "name": name,
            "smooth": smooth,
            "inputs": [enc(x) for x in xs],
            "output": enc(y),
            "cotangent": enc(ct),
            "grads": grads,
        })
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "golden", "ops.json")
    with open(path, "w") as f:
        json.dump({"generator": f"torch {torch.__version__}", "cases": out}, f, separators=(",", ":"))
    print(f"wrote {len(out)} cases to {os.path.normpath(path)}")


if __name__ == "__main__":
    main()
