#!/usr/bin/python3
"""More held-out text for the tiny transformer's quality test (no retraining).

Run with Debian's python3 (standard library only):
    /usr/bin/python3 scripts/heldout-licences.py [OUT_DIR] [--stats]

The tiny transformer (scripts/train-tiny-transformer.py) was trained on every
licence text in /usr/share/common-licenses but MPL-2.0; MPL-2.0 (16.7 KB) is
its only held-out text. This script gathers more licence text of the same
kind from the licence bodies of Debian's machine-readable copyright files
(/usr/share/doc/*/copyright, `License:` fields with their continuation
lines; a lone "." is an empty line) and keeps a paragraph only when
  - it is printable ASCII (the training text is), at least MIN_CHARS
    characters long once normalised (below), so the K-gram check covers it;
  - no K characters of it, lowercased with whitespace runs collapsed, occur
    in the training text, in MPL-2.0, or in a paragraph kept before it
    (so nothing the model saw is in it, and no text is in it twice).
Packages are read in name order, paragraphs in file order. Each licence body
goes whole to one of two files, calibration or judge, keeping their sizes
near 1:3 (the ratio of heldout.txt to heldout-rest.txt), until
CALIB_BYTES and JUDGE_BYTES are filled; both files are then cut to exactly
those sizes (whole 64-byte windows):
    OUT_DIR/heldout-more.txt        calibration text (CALIB_BYTES)
    OUT_DIR/heldout-more-judge.txt  judge text (JUDGE_BYTES)
K is the smallest of K_CHOICES for which the copyright files yield both
budgets (fixed before any correlation was measured). --stats prints, for
each K, how much text survives and how much of MPL-2.0 itself shares a
K-gram with the training text.
"""
import os
import re
import sys

LICENCES = '/usr/share/common-licenses'
DOCS = '/usr/share/doc'
HELDOUT_FILE = 'MPL-2.0'
K_CHOICES = (32, 48, 64)
MIN_CHARS = 64
CALIB_BYTES = 12288
JUDGE_BYTES = 36864
PRINTABLE = re.compile(r'^[\x20-\x7e\n]*$')


def normal(text):
    return re.sub(r'\s+', ' ', text.lower()).strip()


def kgrams(text, k):
    n = normal(text)
    return {n[i:i + k] for i in range(len(n) - k + 1)}


def training_text():
    out = []
    for name in sorted(os.listdir(LICENCES)):
        p = os.path.join(LICENCES, name)
        if name == HELDOUT_FILE or os.path.islink(p):
            continue
        with open(p, 'rb') as f:
            out.append(f.read().decode('latin-1'))
    return '\n'.join(out)


def licence_bodies():
    """(package, [paragraph, ...]) for every License: field with a body, packages in name order."""
    for pkg in sorted(os.listdir(DOCS)):
        p = os.path.join(DOCS, pkg, 'copyright')
        if not os.path.isfile(p) or os.path.islink(os.path.join(DOCS, pkg)):
            continue
        with open(p, 'rb') as f:
            raw = f.read()
        try:
            text = raw.decode('utf-8')
        except UnicodeDecodeError:
            continue
        if not text.startswith('Format:'):
            continue
        body = None
        for line in text.split('\n') + ['']:
            if body is not None and line[:1] in (' ', '\t'):
                body.append('' if line.strip() == '.' else line[1:].rstrip())
                continue
            if body:
                paras, cur = [], []
                for b in body + ['']:
                    if b.strip():
                        cur.append(b)
                    elif cur:
                        paras.append('\n'.join(cur))
                        cur = []
                if paras:
                    yield pkg, paras
            body = [] if line.startswith('License:') else None


def gather(k, train, mpl):
    seen = kgrams(train, k) | kgrams(mpl, k)
    calib, judge = [], []
    nc = nj = 0
    for _, paras in licence_bodies():
        kept = []
        for para in paras:
            if len(normal(para)) < MIN_CHARS or not PRINTABLE.match(para):
                continue
            g = kgrams(para, k)
            if g & seen:
                continue
            seen |= g
            kept.append(para)
        if not kept:
            continue
        doc = '\n\n'.join(kept) + '\n\n'
        to_calib = nc < CALIB_BYTES and (nj >= JUDGE_BYTES or nc * 3 <= nj)
        if to_calib:
            calib.append(doc)
            nc += len(doc)
        elif nj < JUDGE_BYTES:
            judge.append(doc)
            nj += len(doc)
        if nc >= CALIB_BYTES and nj >= JUDGE_BYTES:
            break
    return ''.join(calib), ''.join(judge)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith('--')]
    out_dir = args[0] if args else os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'tiny-transformer')
    train = training_text()
    with open(os.path.join(LICENCES, HELDOUT_FILE), 'rb') as f:
        mpl = f.read().decode('latin-1')
    if '--stats' in sys.argv:
        tg = None
        for k in K_CHOICES:
            tg = kgrams(train, k)
            n = normal(mpl)
            covered = [False] * len(n)
            for i in range(len(n) - k + 1):
                if n[i:i + k] in tg:
                    for j in range(i, i + k):
                        covered[j] = True
            c, j = gather(k, train, mpl)
            print(f'K={k}: MPL-2.0 chars inside a K-gram of the training text {sum(covered) / len(n):.1%}; gathered calibration {len(c)} B, judge {len(j)} B')
        return
    for k in K_CHOICES:
        calib, judge = gather(k, train, mpl)
        if len(calib) >= CALIB_BYTES and len(judge) >= JUDGE_BYTES:
            break
    else:
        sys.exit(f'the copyright files yield {len(calib)} + {len(judge)} bytes, fewer than {CALIB_BYTES} + {JUDGE_BYTES}')
    for name, text, size in (('heldout-more.txt', calib, CALIB_BYTES), ('heldout-more-judge.txt', judge, JUDGE_BYTES)):
        with open(os.path.join(out_dir, name), 'wb') as f:
            f.write(text[:size].encode('ascii'))
    print(f'K={k}: wrote heldout-more.txt ({CALIB_BYTES} B) and heldout-more-judge.txt ({JUDGE_BYTES} B) to {out_dir}')


if __name__ == '__main__':
    main()
