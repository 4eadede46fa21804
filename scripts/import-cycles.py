#!/usr/bin/env python3
"""Import circles between the modules of a crate: reads every `use` line and `crate::` /
`super::` path of SRC_DIR's files (comments and `mod tests` left out), builds the graph of which
module uses which, and prints its cycles (strongly connected components of more than one
module). Exit status 1 when there is one. A coarse reader, not a compiler: it is meant to keep
a layering true, not to prove it.

    scripts/import-cycles.py SRC_DIR [-v]   # -v prints every module's imports
"""
import os, re, sys
root = sys.argv[1]
files = {}
for d, _, fs in os.walk(root):
    for f in fs:
        if f.endswith('.rs'):
            p = os.path.join(d, f); rel = os.path.relpath(p, root)[:-3]
            parts = rel.split('/')
            if parts[-1] == 'mod': parts = parts[:-1]
            if parts == ['lib'] or parts == ['main']: parts = []
            files['::'.join(parts)] = p
def resolve(path):
    # longest module prefix that is a file
    segs = path.split('::')
    for n in range(len(segs), 0, -1):
        m = '::'.join(segs[:n])
        if m in files: return m
    return None
def expand_use(text):
    # flatten `use crate::a::{b, c::{d}}` into paths
    out = []
    def rec(prefix, body):
        depth = 0; cur = ''; items = []
        for ch in body:
            if ch == '{': depth += 1
            if ch == '}': depth -= 1
            if ch == ',' and depth == 0: items.append(cur); cur = ''
            else: cur += ch
        items.append(cur)
        for it in items:
            it = it.strip()
            if not it: continue
            m = re.match(r'^([\w:]*?)::\{(.*)\}$', it, re.S)
            if m: rec(prefix + [x for x in m.group(1).split('::') if x], m.group(2))
            else: out.append(prefix + [x for x in re.split(r'\s+as\s+', it)[0].split('::') if x])
    rec([], text)
    return out
edges = {m: set() for m in files}
for m, p in files.items():
    src = open(p).read()
    src = re.sub(r'#\[cfg\(test\)\]\s*mod tests\s*\{.*', '', src, flags=re.S)
    # Comments (doc links included) are no dependency.
    src = re.sub(r'//[^\n]*', '', src)
    me = m.split('::') if m else []
    paths = []
    for u in re.findall(r'\buse\s+([^;]+);', src):
        paths += expand_use(u)
    for x in re.findall(r'\b((?:crate|super)(?:::\w+)+)', src):
        paths.append(x.split('::'))
    for segs in paths:
        if not segs: continue
        if segs[0] == 'crate': base = []; rest = segs[1:]
        elif segs[0] == 'super':
            # `super` is the parent of the module this file defines.
            base = me[:-1]; rest = segs[1:]
            while rest and rest[0] == 'super': base = base[:-1]; rest = rest[1:]
        else: continue
        t = resolve('::'.join(base + rest))
        # The crate root declares every module; a path through it is no dependency on it.
        if t is not None and t != m and t != '':
            edges[m].add(t)
# Strongly connected components (Tarjan).
idx = {}; low = {}; st = []; on = set(); sccs = []; i = [0]
sys.setrecursionlimit(10000)
def sc(v):
    idx[v] = low[v] = i[0]; i[0] += 1; st.append(v); on.add(v)
    for w in edges[v]:
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        comp = []
        while True:
            w = st.pop(); on.discard(w); comp.append(w)
            if w == v: break
        sccs.append(comp)
for v in files:
    if v not in idx: sc(v)
cycles = [sorted(c) for c in sccs if len(c) > 1]
if '-v' in sys.argv:
    for m in sorted(edges): print(m or '(lib)', '->', ', '.join(sorted(edges[m])))
for c in cycles: print('cycle:', ' <-> '.join(c))
print(f'{root}: {len(cycles)} import cycle(s)')
sys.exit(1 if cycles else 0)
