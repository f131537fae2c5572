#!/usr/bin/env python3
# conv.py SRC DST — the one mechanical change the CUDA emulation makes to a
# kernel file (tests/emu/README): every launch
#     NAME<<<GRID, BLOCK[, SHMEM[, STREAM]]>>>(ARGS);
# becomes
#     emu_run(emu_cfg(GRID, BLOCK, ...), [](auto... a_) { return [=] { NAME(a_...); }; }(ARGS));
# so the arguments are evaluated once, on the host, at the launch (as CUDA
# does) and every emulated thread calls NAME with copies of them (NULL in
# ARGS becomes nullptr, which still converts to the pointer parameter).  A #line
# directive keeps the compiler's messages on the original file and lines.
import re, sys

src, dst = sys.argv[1], sys.argv[2]
s = open(src).read()
pat = re.compile(r'([A-Za-z_]\w*(?:<[^<>;(){}]*>)?)\s*<<<(.*?)>>>\s*\(', re.S)
out, pos, n = [], 0, 0
while True:
    m = pat.search(s, pos)
    if not m:
        break
    depth, i = 1, m.end()
    while depth:
        c = s[i]
        if c == '(':
            depth += 1
        elif c == ')':
            depth -= 1
        elif c in '"\'':
            j = i + 1
            while s[j] != c:
                j += 2 if s[j] == '\\' else 1
            i = j
        i += 1
    # NULL (g++: __null, a long once deduced) must stay a null pointer
    args = re.sub(r'\bNULL\b', 'nullptr', s[m.end():i - 1])
    name, cfg = m.group(1), m.group(2)
    # keep the line count: newlines of the launch stay where they were
    out.append(s[pos:m.start()])
    out.append('emu_run(emu_cfg(%s), [](auto... emu_a_) { return [=] { %s(emu_a_...); }; }(%s))'
               % (cfg, name, args))
    pos, n = i, n + 1
out.append(s[pos:])
if '<<<' in s[pos:]:
    sys.exit('%s: a launch conv.py could not rewrite' % src)
open(dst, 'w').write('#line 1 "%s"\n' % src + ''.join(out))
print('%s: %d launches' % (src, n), file=sys.stderr)
