#!/usr/bin/python3
"""Train the tiny byte-level transformer used by the ONNX quantization tests.

Run with Debian's python3-torch and python3-onnx:
    /usr/bin/python3 scripts/train-tiny-transformer.py [OUT_DIR]

Text: Debian's licence texts in /usr/share/common-licenses. Every file but
MPL-2.0 is training text; the first HELDOUT_BYTES of MPL-2.0 are written to
OUT_DIR/heldout.txt and the rest of it to OUT_DIR/heldout-rest.txt, never
seen in training, so quality tests measure quantization error on text the
model did not memorise (and can calibrate on one part, judge on the other); the first
CALIBRATION_BYTES of GPL-3 (training text) go to OUT_DIR/calibration.txt for
GPTQ/AWQ calibration. More held-out text: scripts/heldout-licences.py.

The model is a decoder-only transformer (pre-LayerNorm, causal attention,
GELU MLP) over bytes (vocab 256). Every linear layer is a plain matrix
product with its weight in an initializer (exported as MatMul + Add), which
is the shape the MatMulNBits / QDQ / dynamic conversions work on. Input:
`input_ids` int64 [batch, seq]; output: `logits` float32 [batch, seq, 256].
Training is seeded and single-threaded-friendly: a few minutes of CPU.
"""
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

LICENCES = '/usr/share/common-licenses'
HELDOUT_FILE = 'MPL-2.0'
HELDOUT_BYTES = 4096
# Calibration text for GPTQ/AWQ: in-distribution (part of the training text), written beside the model.
CALIBRATION_FILE = 'GPL-3'
CALIBRATION_BYTES = 8192
D_MODEL = 64
N_HEAD = 4
N_LAYER = 2
D_FF = 4 * D_MODEL
CONTEXT = 64
STEPS = int(os.environ.get('TINY_STEPS', '1500'))
BATCH = 16
SEED = 1234


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln1 = nn.LayerNorm(D_MODEL)
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.proj = nn.Linear(D_MODEL, D_MODEL)
        self.ln2 = nn.LayerNorm(D_MODEL)
        self.fc1 = nn.Linear(D_MODEL, D_FF)
        self.fc2 = nn.Linear(D_FF, D_MODEL)
        mask = torch.full((CONTEXT, CONTEXT), float('-inf')).triu(1)
        self.register_buffer('mask', mask, persistent=False)

    def forward(self, x):
        b, t, d = x.shape
        h = self.ln1(x)
        q, k, v = self.qkv(h).split(D_MODEL, dim=-1)
        hd = D_MODEL // N_HEAD
        q = q.reshape(b, t, N_HEAD, hd).transpose(1, 2)
        k = k.reshape(b, t, N_HEAD, hd).transpose(1, 2)
        v = v.reshape(b, t, N_HEAD, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd)) + self.mask[:t, :t]
        y = F.softmax(att, dim=-1) @ v
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(256, D_MODEL)
        self.pos = nn.Parameter(torch.zeros(CONTEXT, D_MODEL))
        self.blocks = nn.ModuleList([Block() for _ in range(N_LAYER)])
        self.ln_f = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, 256)

    def forward(self, ids):
        t = ids.shape[1]
        x = self.tok(ids) + self.pos[:t]
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln_f(x))


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'tiny-transformer')
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    train = bytearray()
    for name in sorted(os.listdir(LICENCES)):
        p = os.path.join(LICENCES, name)
        if name == HELDOUT_FILE or os.path.islink(p):
            continue
        with open(p, 'rb') as f:
            train += f.read()
    with open(os.path.join(LICENCES, HELDOUT_FILE), 'rb') as f:
        mpl = f.read()
    heldout, heldout_rest = mpl[:HELDOUT_BYTES], mpl[HELDOUT_BYTES:]
    data = torch.tensor(list(train), dtype=torch.long)
    model = TinyLM()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=STEPS, pct_start=0.1)
    t0 = time.time()
    for step in range(STEPS):
        ix = torch.randint(0, len(data) - CONTEXT - 1, (BATCH,))
        x = torch.stack([data[i:i + CONTEXT] for i in ix])
        y = torch.stack([data[i + 1:i + CONTEXT + 1] for i in ix])
        loss = F.cross_entropy(model(x).reshape(-1, 256), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == STEPS - 1:
            print(f'step {step} loss {loss.item():.3f} ({time.time() - t0:.0f}s)', flush=True)

    model.eval()
    h = torch.tensor(list(heldout), dtype=torch.long)
    with torch.no_grad():
        n = (len(h) - 1) // CONTEXT
        xs = h[:n * CONTEXT].reshape(n, CONTEXT)
        ys = h[1:n * CONTEXT + 1].reshape(n, CONTEXT)
        val = F.cross_entropy(model(xs).reshape(-1, 256), ys.reshape(-1)).item()
    print(f'held-out loss {val:.3f} nats/byte ({val / math.log(2):.3f} bits/byte)')

    onnx_path = os.path.join(out_dir, 'tiny-transformer.onnx')
    dummy = torch.zeros((1, CONTEXT), dtype=torch.long)
    torch.onnx.export(
        model, (dummy,), onnx_path, opset_version=17, input_names=['input_ids'], output_names=['logits'],
        dynamic_axes={'input_ids': {0: 'batch', 1: 'seq'}, 'logits': {0: 'batch', 1: 'seq'}},
        do_constant_folding=True,
    )
    with open(os.path.join(out_dir, 'heldout.txt'), 'wb') as f:
        f.write(heldout)
    with open(os.path.join(out_dir, 'heldout-rest.txt'), 'wb') as f:
        f.write(heldout_rest)
    with open(os.path.join(LICENCES, CALIBRATION_FILE), 'rb') as f:
        calibration = f.read()[:CALIBRATION_BYTES]
    with open(os.path.join(out_dir, 'calibration.txt'), 'wb') as f:
        f.write(calibration)
    print(f'wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes), heldout.txt ({len(heldout)} bytes)')


if __name__ == '__main__':
    main()
