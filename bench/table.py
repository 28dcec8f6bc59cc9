"""Prints the results of bench/run.sh (results.jsonl) as one markdown table."""
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]


def runs(backend, scenario):
    return [r for r in rows if r["backend"] == backend and r["scenario"] == scenario]


def median_run(rs, key):
    rs = sorted(rs, key=key)
    return rs[(len(rs) - 1) // 2]


def spread(values):
    if len(values) < 2:
        return ""
    return f" ({min(values):,.0f}–{max(values):,.0f})"


LABELS = {
    "ceiling_get": "ceiling: bare actix-web GET, fixed JSON",
    "ceiling_post": "ceiling: bare actix-web POST reference body",
    "create": "1. POST /identities (reference body)",
    "get": "2. GET /identities/:id",
    "list_first": "3a. list like:{like} page 1",
    "list_deep": "3b. list like:{like} page {deep} (last)",
    "list_middle": "3d. list like:{like} page {middle} (middle: farthest from both ends)",
    "list_rare": "3c. list like:{rare} (1 match) page 1",
    "list_substring": "3e. list like:{substring} (no @: no index range) page 1",
    "list_substring_rare": "3f. list like:{rare_substring} (no @, few matches) page 1",
    "list_unfiltered_first": "3g. list, no filter, page 1",
    "list_page_middle": "3h. list, no filter, page[number] in the middle",
    "list_cursor_middle": "3i. list, no filter, the same page by page[after]",
    "list_cursor_shallow": "3j. list, no filter, page 2 by page[after]",
    "operations": "4. GET /identities/:id/operations",
}
LIMITS = {"create": "create_limit", "get": "get_limit"}

print("| backend | scenario | req/s | p50 ms | p99 ms | errors | server peak RSS | server CPU/req | DB limit tx/s (p50/p99 ms) | server/limit |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
backends = []
for r in rows:
    if r["backend"] not in backends:
        backends.append(r["backend"])
for backend in backends:
    params = next((r for r in rows if r["backend"] == backend and r["scenario"] == "params"), {})
    seed = next((r for r in rows if r["backend"] == backend and r["scenario"] == "seed"), None)
    for scenario in ["ceiling_get", "ceiling_post", "create", "get", "list_first", "list_deep", "list_middle", "list_rare", "list_substring",
                     "list_substring_rare", "list_unfiltered_first", "list_page_middle", "list_cursor_middle",
                     "list_cursor_shallow", "operations"]:
        rs = runs(backend, scenario)
        if not rs:
            continue
        label = (LABELS[scenario] + (" [{c} conns]" if rs[0].get("conns") else "")).format(c=rs[0].get("conns"), 
            like=params.get("like_common", "?"), deep=params.get("deep_page", "?"), rare=params.get("rare_like", "?"),
            middle=(params.get("deep_page", 0) + 1) // 2, substring=params.get("like_common", "?").lstrip("@"),
            rare_substring=params.get("rare_like", "?").rstrip("@")
        )
        if rs[0].get("missing"):
            print(f"| {backend} | {label} | route not implemented in this commit | | | | | | | |")
            continue
        m = median_run(rs, lambda r: r["wrk"]["rps"])
        w = m["wrk"]
        if w["requests"] == 0:
            print(f"| {backend} | {label} | no response completed in {w['duration_s']:.0f} s | | > {w['duration_s'] * 1000:,.0f} | | | | | |")
            continue
        errors = sum(r["wrk"]["status_errors"] + r["wrk"]["socket_errors"] + r["wrk"]["timeouts"] for r in rs)
        rss = f"{m['peak_rss_kib'] / 1024:.0f} MiB" if m.get("peak_rss_kib") else ""
        cpu = f"{m['server_cpu_s'] / max(w['requests'], 1) * 1e6:.0f} µs" if m.get("server_cpu_s") else ""
        if backend == "postgres" and m.get("postgres_cpu_s"):
            cpu += f" (+pg {m['postgres_cpu_s'] / max(w['requests'], 1) * 1e6:.0f} µs)"
        limit, ratio = "", ""
        if scenario in LIMITS:
            ls = runs(backend, LIMITS[scenario])
            if ls:
                lm = median_run(ls, lambda r: r["limit"]["tps"])["limit"]
                limit = f"{lm['tps']:,.0f}{spread([r['limit']['tps'] for r in ls])} ({lm['p50_ms']:.2f}/{lm['p99_ms']:.2f})"
                if any(r["limit"].get("errors") for r in ls):
                    limit += f" [{sum(r['limit'].get('errors', 0) for r in ls)} errors]"
                ratio = f"{w['rps'] / lm['tps']:.2f}" if lm["tps"] else ""
        print(
            f"| {backend} | {label} | {w['rps']:,.0f}{spread([r['wrk']['rps'] for r in rs])} | {w['p50_ms']:.2f} | "
            f"{w['p99_ms']:.2f} | {errors} | {rss} | {cpu} | {limit} | {ratio} |"
        )
    al = runs(backend, "all")
    if al:
        t = statistics.median(r["seconds"] for r in al)
        m = al[0]
        peak = max(r["peak_rss_kib"] for r in al)
        bad = sum(1 for r in al if r["status"] != 200 or r["rows"] != r["total"])
        print(
            f"| {backend} | 5. all=true, {m['rows']:,} identities ({m['bytes'] / 1e6:.0f} MB) | "
            f"{1 / t:.2f} ({t:.2f} s/response, {m['rows'] / t:,.0f} identities/s) | | | {bad} | "
            f"{peak / 1024:.0f} MiB (idle {m['start_rss_kib'] / 1024:.0f} MiB) | "
            f"{statistics.median(r['server_cpu_s'] for r in al) / m['rows'] * 1e6:.0f} µs/identity | | |"
        )
    if seed:
        print(f"| {backend} | seeding {seed['rows']:,} identities, each with the template's child rows | {seed['seconds']:.0f} s | | | | | | | |")
