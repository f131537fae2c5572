"""scale_stamp.py — copy stdin to stdout, one line per progress update (the
\\r-separated meter of --progress, or a \\n line), each prefixed with the
seconds since this program started.  The scaling scripts pipe stderr through
it to split a run into phases (index build before the first update, search
after it)."""
import sys
import time

t0 = time.monotonic()
buf = b""
while True:
    b = sys.stdin.buffer.read1(4096) if hasattr(sys.stdin.buffer, "read1") else sys.stdin.buffer.read(1)
    if not b:
        break
    buf += b
    while True:
        i = min([j for j in (buf.find(b"\r"), buf.find(b"\n")) if j >= 0], default=-1)
        if i < 0:
            break
        line, buf = buf[:i].strip(), buf[i + 1:]
        if line:
            sys.stdout.write("%.2f %s\n" % (time.monotonic() - t0, line.decode("utf-8", "replace")))
            sys.stdout.flush()
if buf.strip():
    sys.stdout.write("%.2f %s\n" % (time.monotonic() - t0, buf.strip().decode("utf-8", "replace")))
