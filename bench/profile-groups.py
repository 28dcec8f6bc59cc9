"""Groups the samples of a call-graph profile of the server (`perf record
-g --call-graph dwarf`, then `perf script -F comm,ip,sym --no-inline`) by
what they were doing, and prints each group's share (BENCHMARKS.md, "Performance,
sixth round"): python3 bench/profile-groups.py stacks.txt"""
import re, sys
from collections import Counter

def samples(path):
    stack = []
    for line in open(path, errors="replace"):
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line.startswith("\t"):
            parts = line.strip().split(" ", 1)
            stack.append((parts[0], parts[1] if len(parts) > 1 else "?"))
    if stack:
        yield stack

USER = [
    ("SQLite (its own code)", re.compile(r"^(sqlite3|pcache|walFind|getPage|getAndInitPage|moveTo|btree|vdbe|unixRead|readDbPage|balance|insertCell|fillInCell)", re.I)),
    ("allocation", re.compile(r"^(_rjem_|malloc|free|cfree|calloc|realloc|_int_|sysmalloc|__libc_malloc|__libc_free|je_)")),
    ("Diesel", re.compile(r"^<?diesel::|^<diesel|diesel::")),
    ("JSON (serde)", re.compile(r"serde_json|serde_core|::serialize$|Serialize")),
    ("chrono", re.compile(r"chrono")),
    ("libpq and TLS", re.compile(r"^(PQ|pq|pgtls|SSL_|ssl|EVP_|aesni|ossl|CRYPTO|tls)")),
    ("telemetry (tracing, metrics)", re.compile(r"tracing|metrics|telemetry")),
    ("routing (actix-router)", re.compile(r"actix_router|regex")),
    ("actix-web / actix-http", re.compile(r"actix|http::|h1::")),
    ("tokio / mio / parking_lot", re.compile(r"tokio|mio::|parking_lot|futures")),
    ("kyc-api's own code", re.compile(r"kyc_api")),
]
KERNEL = [
    ("kernel: reading SQLite pages (pread)", re.compile(r"pread|filemap|vfs_read|copy_page_to_iter")),
    ("kernel: scheduling and futex", re.compile(r"futex|schedule|finish_task_switch|try_to_wake_up|wake_up")),
    ("kernel: network (TCP on loopback, epoll)", re.compile(r"tcp|sock|sendto|recvfrom|epoll|net_|ip_|skb|napi|softirq")),
    ("kernel: memory (page faults, madvise)", re.compile(r"page_fault|madvise|mmap|munmap|handle_mm")),
]

def category(stack):
    if stack[0][0].startswith("ffffffff"):
        names = [s for a, s in stack if a.startswith("ffffffff")]
        for name, rx in KERNEL:
            if any(rx.search(n) for n in names):
                return name
        return "kernel: other"
    for addr, sym in stack:
        if addr.startswith("ffffffff"):
            continue
        for name, rx in USER:
            if rx.search(sym):
                return name
    return "other (libc, unresolved)"

counts, phases = Counter(), Counter()
PHASES = [("the key check", "ApiKey::authenticate"), ("the GET's reads and views", "services::identities::get"),
          ("the list's reads", "services::listing"), ("the hop to the blocking pool", "spawn_blocking"),
          ("the blocking pool's threads waiting and woken", "Condvar::wait")]
for st in samples(sys.argv[1]):
    counts[category(st)] += 1
    syms = " ".join(s for _, s in st)
    for name, key in PHASES:
        if key in syms:
            phases[name] += 1
            break
    else:
        phases["elsewhere (HTTP, runtime, kernel)"] += 1
total = sum(counts.values())
print(f"{total} samples")
for name, n in counts.most_common():
    print(f"| {name} | {100 * n / total:.1f} % |")
# The phases name a GET's functions; a profile of anything else has none.
if phases["elsewhere (HTTP, runtime, kernel)"] < total:
    print()
for name, n in phases.most_common() if phases["elsewhere (HTTP, runtime, kernel)"] < total else []:
    print(f"| {name} | {100 * n / total:.1f} % |")
