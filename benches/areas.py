#!/usr/bin/env python3
"""Where a profile's samples go, by area of the request path.

Reads a folded-stacks file from `inferno-collapse-perf --all` (kernel frames end in
`_[k]`), strips generic parameters from frame names, and charges each sample to the
innermost frame that belongs to a known area (hyper's server, the upstream client,
the pipeline, ...). Prints each area's share of all samples and the user-space part
of it (the kernel's share is mostly the loopback TCP work of the syscalls, which
nginx pays alike).

    python3 benches/areas.py OUT/folded-k.txt
"""
import collections
import re
import sys

AREAS = [
    ("upstream client (client::h1)", r"switchyard::client::h1"),
    ("relay (response bodies)", r"switchyard::relay|H1Body"),
    ("request peek (serde_json)", r"switchyard_dialects|serde_json"),
    ("record: metrics + access log", r"switchyard::record|prometheus::|switchyard::metrics"),
    ("upstream send (attempt, headers)", r"switchyard::upstream"),
    ("pipeline (auth, plan, ids, glue)", r"switchyard::pipeline|switchyard::auth|switchyard::snapshot"),
    ("hyper server (parse, encode, dispatch)", r"^hyper::|hyper_util"),
    ("server::conn (deadlines)", r"switchyard::server::conn"),
    ("tokio (scheduler, timers, I/O driver)", r"^tokio::"),
]
PATTERNS = [(name, re.compile(p)) for name, p in AREAS]


def strip_generics(frame):
    out, depth = [], 0
    for ch in frame:
        if ch == "<":
            depth += 1
        elif ch == ">" and depth:
            depth -= 1
        elif not depth:
            out.append(ch)
    return "".join(out)


def main(path):
    total = user = 0
    all_by, user_by = collections.Counter(), collections.Counter()
    with open(path) as f:
        for line in f:
            stack, _, n = line.rstrip().rpartition(" ")
            if not n.isdigit():
                continue
            n = int(n)
            frames = stack.split(";")
            kernel = frames[-1].endswith("_[k]")
            total += n
            user += 0 if kernel else n
            area = "other"
            for frame in reversed([strip_generics(f) for f in frames if not f.endswith("_[k]")]):
                hit = next((name for name, p in PATTERNS if p.search(frame)), None)
                if hit:
                    area = hit
                    break
            all_by[area] += n
            if not kernel:
                user_by[area] += n
    if not total:
        sys.exit("no samples")
    print(f"user space: {100 * user / total:.1f} % of samples; kernel: {100 * (total - user) / total:.1f} %")
    print(f"{'area':42} {'all':>7} {'user':>7}")
    for area, n in all_by.most_common():
        print(f"{area:42} {100 * n / total:6.1f}% {100 * user_by[area] / total:6.1f}%")


if __name__ == "__main__":
    main(sys.argv[1])
