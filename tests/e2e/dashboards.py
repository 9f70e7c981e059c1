"""Every Grafana panel's query, run against the end-to-end test's Prometheus (tests/e2e/e2e.py).

Template variables as Grafana would fill them: `job` and `instance` first as "All" (the dashboards'
default, allValue `.*`), then as single real values taken from Prometheus's label values (the variable's
own `label_values(...)` query): each query must return data with All and with at least one real value.
`$__rate_interval` is 1m, `$__interval` 5s, `$__range` 1h. A panel without data is a FAIL, unless an
exporter it needs is not running here (SKIP, exporter missing) or it is listed in EXPECTED_EMPTY with
the reason the simulated world cannot produce its data (SKIP, with that reason).
"""

import glob
import json
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Panels that cannot have data against the simulator, by (dashboard uid, panel title), and why.
EXPECTED_EMPTY = {}

# Which exporters (tests/e2e/e2e.py's EXPORTERS keys) can feed a query: by metric name prefix, and by
# the job names its job matchers select (prometheus/prometheus.yml's jobs, docs/metrics.md).
METRIC_FEEDS = [
    (r"seattle_process_|seattle_filesystem_", {"process"}),
    (r"seattle_nodemanager_|seattle_advertise_|seattle_user_|seattle_discovery_", {"node"}),
    (r"seattle_local_", {"node_local"}),
    (r"seattle_updatesite_|seattle_http_|seattle_cib_|seattle_lockserver_", {"updatesite"}),
    (r"seattle_install_", {"install"}),
    (r"seattle_dns_|seattle_zenodotus_", {"zenodotus"}),
    # Every multi-target exporter has these.
    (r"\bprobe_|seattle_probe_failure_info|seattle_exporter_probes_", {"node", "updatesite", "zenodotus"}),
    # Alerts firing in the simulated world come from its broken nodes (nodemanager probes).
    (r"\bALERTS\b", {"node"}),
]


def feeds(expr, exporters):
    """Exporters that can give this query data (exporters: e2e.EXPORTERS, for their jobs)."""
    out = set()
    for pat, keys in METRIC_FEEDS:
        if re.search(pat, expr):
            out |= keys
    for m in re.finditer(r'\bjob\s*(=~|=)\s*"([^"]*)"', expr):
        op, val = m.groups()
        rx = val.replace("\\\\", "\\") if op == "=~" else re.escape(val)
        for e in exporters:
            if any(re.fullmatch(rx, j) for j in e.jobs):
                out.add(e.key)
    return out


def regex_escape(v):
    # Grafana's Prometheus datasource escapes regex metacharacters of single values put in =~ "…".
    return re.sub(r"([\\^$*+?.()|\[\]{}])", r"\\\\\1", v)


def substitute(expr, values):
    e = expr.replace("$__rate_interval", "1m").replace("${__rate_interval}", "1m")
    e = e.replace("$__interval", "5s").replace("${__interval}", "5s")
    e = e.replace("$__range", "1h").replace("${__range}", "1h")
    for name, v in values.items():
        e = re.sub(r"\$\{" + name + r"(:\w+)?\}|\$" + name + r"\b", lambda _: v, e)
    if re.search(r"\$\w", e):
        raise ValueError(f"unknown template variable in {expr!r}")
    return e


def label_values(stack, var, values):
    q = var.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q or "")
    if not m:
        return []
    series = stack.query(substitute(m.group(1), values))
    return sorted({s["metric"].get(m.group(2)) for s in series} - {None})


def check(stack):
    results = []
    for path in sorted(glob.glob(os.path.join(ROOT, "dashboards/grafana/dashboards/*.json"))):
        d = json.load(open(path))
        uid = d.get("uid")
        variables = [v for v in d.get("templating", {}).get("list", []) if v.get("type") == "query"]
        all_values = {v["name"]: v.get("allValue") or ".*" for v in variables}
        # Real values for each variable, earlier variables set to All (Grafana's default).
        real = {v["name"]: label_values(stack, v, all_values) for v in variables}
        # Candidate single-value assignments: every job, with up to five of its instances.
        combos = []
        if "job" in real:
            for job in real["job"]:
                inst_var = next((v for v in variables if v["name"] == "instance"), None)
                insts = label_values(stack, inst_var, dict(all_values, job=regex_escape(job))) if inst_var else []
                for inst in insts[:5] or [None]:
                    c = dict(all_values, job=regex_escape(job))
                    if inst is not None:
                        c["instance"] = regex_escape(inst)
                    combos.append(c)
        for p in d.get("panels", []):
            if p.get("type") == "row" or not p.get("targets"):
                continue
            title = p.get("title", "")
            name = f"dashboard {uid} / {title}"
            exprs = [t.get("expr", "") for t in p["targets"] if t.get("expr")]
            empty, errors = [], []
            for e in exprs:
                try:
                    if not stack.query(substitute(e, all_values)):
                        empty.append(e)
                except Exception as err:  # noqa: BLE001 -- a query that does not run is a failure
                    errors.append(f"{e!r}: {err}")
            # With single real values: at least one assignment must give data for each query that
            # uses a variable (only checked when All gave data).
            single_empty = []
            for e in exprs:
                if e in empty or not re.search(r"\$\{?(job|instance)\b", e):
                    continue
                if not any(stack.query(substitute(e, c)) for c in combos):
                    single_empty.append(e)
            fed_by = set().union(*(feeds(e, stack.exporters) for e in empty)) if empty else set()
            missing = sorted(k for k in fed_by if k not in stack.running)
            if errors:
                results.append(("FAIL", name, "query error: " + "; ".join(errors)))
            elif empty and missing:
                results.append(("SKIP", name, f"SKIP (exporter missing: {', '.join(missing)}): no data for {empty}"))
            elif empty and (uid, title) in EXPECTED_EMPTY:
                results.append(("SKIP", name, f"no data, expected: {EXPECTED_EMPTY[(uid, title)]}"))
            elif empty:
                results.append(("FAIL", name, f"no data for {empty}"))
            elif single_empty:
                results.append(("FAIL", name, f"data with All, but with no single job/instance value: {single_empty}"))
            else:
                results.append(("PASS", name, f"{len(exprs)} queries return data"))
    return results
