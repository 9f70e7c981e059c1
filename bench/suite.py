#!/usr/bin/env python3
"""Our exporters against the peer exporters, side by side, in one run (started by bench/run).

Every comparison starts ours and the peer on the same machine against the same work (the
simulator `seattle_simulator`, or this machine's processes), alternates timed runs (ours then
the peer, then the peer then ours, ...) so that machine drift hits both, and reports ratios:

* CPU per probe / scrape: (utime + stime) delta of the exporter's /proc/<pid>/stat over the
  run, divided by the requests it answered (all threads of the process are counted).
* latency p50 / p99 and throughput: from the load generator (wrk, keep-alive HTTP/1.1, the
  probe target rotating over the whole simulated fleet).
* RSS: VmRSS of the exporter after its last run.

Standard library only. Results go to stdout and, as markdown + a gnuplot PNG, to --out.
"""

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
TICK = os.sysconf("SC_CLK_TCK")
BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"

# ---------------------------------------------------------------------------------------------
# /proc readings


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine():
    def first(path, prefix):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(prefix):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "?"

    mem_kib = first("/proc/meminfo", "MemTotal").split()[0]
    return {
        "nproc": os.cpu_count(),
        "memory": f"{int(mem_kib) / 1024 / 1024:.1f} GiB" if mem_kib.isdigit() else "?",
        "kernel": platform.release(),
        "cpu": first("/proc/cpuinfo", "model name"),
        "processes": sum(1 for d in os.listdir("/proc") if d.isdigit()),
        "loadavg": open("/proc/loadavg").read().split()[:3],
    }


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Daemons


class Daemon:
    """A process started for the benchmark; ready when `ready_url` answers (any HTTP status)."""

    def __init__(self, name, argv, logdir, ready_url=None, ready_file=None, timeout=60):
        self.name = name
        self.argv = argv
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.logf = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.pid = self.proc.pid
        deadline = time.time() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: {self.tail()}")
            if ready_file and os.path.exists(ready_file) and os.path.getsize(ready_file) > 0:
                break
            if ready_url:
                try:
                    urllib.request.urlopen(ready_url, timeout=2).read()
                    break
                except urllib.error.HTTPError:
                    break
                except OSError:
                    pass
            if time.time() > deadline:
                self.stop()
                raise RuntimeError(f"{name} not ready after {timeout}s: {self.tail()}")
            time.sleep(0.05)

    def tail(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-400:].decode(errors="replace").strip()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()


# ---------------------------------------------------------------------------------------------
# Load generators


def wrk_run(port, path_prefix, targets_file, conns, seconds, rate=0):
    """One timed wrk run; returns its JSON summary."""
    threads = max(1, min(2, conns))
    argv = [
        "wrk",
        "-t", str(threads),
        "-c", str(conns),
        "-d", f"{seconds}s",
        "--timeout", "12s",
        "-s", os.path.join(BENCH, "rotate.lua"),
        f"http://127.0.0.1:{port}",
        "--", path_prefix, targets_file, str(threads), str(rate or 0),
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"wrk printed no summary: {out.stdout[-300:]} {out.stderr[-300:]}")


async def _sweep(port, path_prefix, targets, conns):
    """Probes every target once over `conns` keep-alive connections; returns (ok, fail)."""
    queue = list(reversed(targets))
    counts = [0, 0]
    head = (
        "Accept: text/plain;version=0.0.4\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n"
        "Host: 127.0.0.1\r\n\r\n"
    )

    async def worker():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                t = queue.pop()
                writer.write(f"GET {path_prefix}{t} HTTP/1.1\r\n{head}".encode())
                status_line = await reader.readline()
                headers = {}
                while True:
                    line = await reader.readline()
                    if line in (b"\r\n", b""):
                        break
                    k, _, v = line.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                else:  # chunked
                    body = b""
                    while True:
                        size = int((await reader.readline()).split(b";")[0], 16)
                        chunk = await reader.readexactly(size + 2)
                        if size == 0:
                            break
                        body += chunk[:-2]
                good = b" 200 " in status_line and b"\nprobe_success 1" in body
                counts[0 if good else 1] += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return counts


def sweep(port, path_prefix, targets, conns):
    return asyncio.run(_sweep(port, path_prefix, targets, conns))


# ---------------------------------------------------------------------------------------------
# Results

RESULTS = []  # one dict per (bench, case, exporter)
RATIOS = []  # one dict per (bench, case)
SKIPS = []  # (bench, why)
NOTES = []


def skip(bench, why):
    log(f"SKIP {bench}: {why}")
    SKIPS.append((bench, why))


class Side:
    """One exporter under test, with its accumulated measurements for the current case."""

    def __init__(self, name, daemon, path_prefix, targets_file, sim):
        self.name, self.daemon, self.path_prefix = name, daemon, path_prefix
        self.targets_file, self.sim = targets_file, sim
        self.reset()

    def reset(self):
        self.runs = []

    def port(self):
        return int(self.daemon.argv[self.daemon.argv.index("--web.listen-address") + 1]
                   .rsplit(":", 1)[1])

    def measure(self, conns, seconds, rate=0):
        c0 = cpu_ticks(self.daemon.pid)
        s0 = cpu_ticks(self.sim.pid) if self.sim else 0
        r = wrk_run(self.port(), self.path_prefix, self.targets_file, conns, seconds, rate)
        r["cpu_s"] = (cpu_ticks(self.daemon.pid) - c0) / TICK
        r["sim_cpu_s"] = ((cpu_ticks(self.sim.pid) - s0) / TICK) if self.sim else 0.0
        self.runs.append(r)
        return r

    def summary(self):
        req = sum(r["requests"] for r in self.runs)
        dur = sum(r["duration_us"] for r in self.runs) / 1e6
        return {
            "exporter": self.name,
            "requests": req,
            "ok_pct": 100.0 * sum(r["ok"] for r in self.runs) / max(1, req),
            "cpu_ms": 1000 * sum(r["cpu_s"] for r in self.runs) / max(1, req),
            "sim_cpu_ms": 1000 * sum(r["sim_cpu_s"] for r in self.runs) / max(1, req),
            "rps": req / dur if dur else 0.0,
            "p50_ms": statistics.median(r["p50_us"] for r in self.runs) / 1000,
            "p99_ms": statistics.median(r["p99_us"] for r in self.runs) / 1000,
            "rss_mb": rss_mb(self.daemon.pid),
            "rounds": len(self.runs),
        }


def compare(bench, case, ours, peer, conns, seconds, rounds, target=None, rate=None):
    """Alternating timed runs of ours and the peer; records one ratio row. With `rate`, the
    load is paced to about that many probes/s for both (else each runs flat out)."""
    log(f"== {bench} {case}: {rounds} rounds of {seconds}s each, {conns} connections")
    for side in (ours, peer):  # warm-up: connections, caches, Go's GC sizing
        side.measure(conns, 1, rate)
        side.reset()
    for i in range(rounds):
        for side in (ours, peer) if i % 2 == 0 else (peer, ours):
            r = side.measure(conns, seconds, rate)
            log(
                f"   {side.name:<32} {r['requests'] / (r['duration_us'] / 1e6):8.0f}/s "
                f"cpu {1000 * r['cpu_s'] / max(1, r['requests']):.3f} ms "
                f"ok {r['ok']}/{r['requests']} p99 {r['p99_us'] / 1000:.1f} ms"
            )
    o, p = ours.summary(), peer.summary()
    for s in (o, p):
        s.update(bench=bench, case=case)
        RESULTS.append(s)
    ratio = {
        "bench": bench,
        "case": case,
        "cpu": p["cpu_ms"] / o["cpu_ms"] if o["cpu_ms"] else float("inf"),
        "rps": o["rps"] / p["rps"] if p["rps"] else float("inf"),
        "p50": p["p50_ms"] / o["p50_ms"] if o["p50_ms"] else float("inf"),
        "p99": p["p99_ms"] / o["p99_ms"] if o["p99_ms"] else float("inf"),
        "rss": p["rss_mb"] / o["rss_mb"] if o["rss_mb"] else float("inf"),
    }
    if target:
        ratio["target"], ratio["met"] = target(o, p)
        if not ratio["met"] and PROFILE["enabled"]:
            profile(f"{bench}, {case}", ours, conns, seconds, rate)
    RATIOS.append(ratio)
    return o, p


PROFILE = {"enabled": True, "tmp": None}
PROFILES = []  # (title, top DSOs, top symbols)


def profile(title, side, conns, seconds, rate):
    """A missed target: sample ours with perf (cpu-clock: works without hardware counters)
    during one more run and keep the top shared objects and symbols."""
    if not shutil.which("perf"):
        NOTES.append(f"{title}: target missed; perf is not installed, no profile taken.")
        return
    data = os.path.join(PROFILE["tmp"], f"perf-{len(PROFILES)}.data")
    rec = subprocess.Popen(
        ["perf", "record", "-e", "cpu-clock", "-c", "1000000", "-g", "-o", data,
         "-p", str(side.daemon.pid), "--", "sleep", str(seconds)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.3)
    try:
        wrk_run(side.port(), side.path_prefix, side.targets_file, conns, seconds, rate)
    finally:
        rec.wait(seconds + 30)
    tops = []
    for sort in ("dso", "dso,sym"):
        r = subprocess.run(
            ["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
             "--sort", sort, "--percent-limit", "1"],
            capture_output=True, text=True,
        )  # fmt: skip
        lines = [ln.rstrip() for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("#")]
        tops.append(lines[:25])
    if not tops[0]:
        NOTES.append(f"{title}: target missed; perf recorded no samples of {side.name}.")
        return
    log(f"   profile of {side.name}: " + "; ".join(t.strip() for t in tops[0][:4]))
    PROFILES.append((f"{side.name} — {title}", tops[0], tops[1]))


# ---------------------------------------------------------------------------------------------
# The simulated testbed and the exporters


def blackbox_config(path, ep):
    dns_host, dns_port = ep["zenodotus_dns"].rsplit(":", 1)
    with open(path, "w") as f:
        f.write(
            f"""modules:
  nodemanager_tcp:
    prober: tcp
    timeout: 10s
    tcp:
      preferred_ip_protocol: ip4
      query_response:
        - send: "12\\nGetVessels|"
        - expect: "Success"
  zenodotus_dns:
    prober: dns
    timeout: 10s
    dns:
      transport_protocol: udp
      preferred_ip_protocol: ip4
      query_name: "hello.{ep['zenodotus_zone']}"
      query_type: A
      valid_rcodes: [NOERROR]
      validate_answer_rrs:
        fail_if_none_matches_regexp: [".*"]
  updatesite_http:
    prober: http
    timeout: 10s
    http:
      preferred_ip_protocol: ip4
      valid_status_codes: [200]
"""
        )
    return f"127.0.0.1:{dns_port}" if dns_host in ("0.0.0.0", "127.0.0.1") else ep["zenodotus_dns"]


def start_blackbox(tmp, ep, sim):
    cfg = os.path.join(tmp, "blackbox.yml")
    dns_target = blackbox_config(cfg, ep)
    port = free_port()
    d = Daemon(
        "blackbox_exporter",
        [BLACKBOX, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}",
         "--log.level", "error"],
        tmp,
        ready_url=f"http://127.0.0.1:{port}/-/healthy",
    )  # fmt: skip
    return d, dns_target


BROKEN = set()  # binaries whose package did not build in bench/run
BINS = []


def start_ours(binary, tmp, config_text, name):
    if binary in BROKEN:
        raise RuntimeError(f"{os.path.basename(binary)} does not build (cargo's error is above)")
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"{binary} is not built")
    cfg = os.path.join(tmp, f"{name}.yml")
    with open(cfg, "w") as f:
        f.write(config_text)
    check = subprocess.run([binary, "--config.file", cfg, "--config.check"],
                           capture_output=True, text=True)  # fmt: skip
    if check.returncode != 0:
        raise RuntimeError(f"--config.check: {(check.stdout + check.stderr).strip()[-300:]}")
    port = free_port()
    return Daemon(
        name,
        [binary, "--config.file", cfg, "--web.listen-address", f"127.0.0.1:{port}",
         "--log.level", "error"],
        tmp,
        ready_url=f"http://127.0.0.1:{port}/-/healthy",
    )  # fmt: skip


def probe_once(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


def sanity(side, target):
    status, body = probe_once(side.port(), side.path_prefix + urllib.parse.quote(target, safe=":/"))
    if status != 200 or "\nprobe_success 1" not in "\n" + body:
        reason = re.search(r'reason="([^"]+)"', body)
        raise RuntimeError(
            f"{side.name}: a probe of {target} did not succeed (HTTP {status}"
            + (f", reason {reason.group(1)}" if reason else "")
            + f"): {body[:300]!r}"
        )


# ---------------------------------------------------------------------------------------------
# The benchmarks


def bench_nodemanager(a, tmp, ep, sim, bb, bins):
    bench = "node manager probe"
    try:
        nodes = ep["nodes"]
        targets_file = os.path.join(tmp, "nodes.txt")
        with open(targets_file, "w") as f:
            f.write("\n".join(nodes) + "\n")
        d = start_ours(
            bins["node"],
            tmp,
            "modules:\n  nodemanager:\n    kind: nodemanager\ndiscovery:\n  enabled: false\n",
            "seattle_node_exporter",
        )
    except Exception as e:  # noqa: BLE001 - any failure here means: skip, loudly
        skip(bench, str(e))
        return
    NOTES.append(
        "Node manager probes: ours makes two calls per probe (`GetVessels` and "
        "`GetOffcutResources`, two connections) and parses both replies into per-vessel "
        "metrics; blackbox makes one call and only matches `Success` on a line. blackbox "
        "appends `\\n` to every `send`, so the obvious `send: \"10\\nGetVessels\"` leaves "
        "a byte unread: the node manager closes after its one request, the kernel answers "
        "with a reset, and blackbox fails the probe although `Success` matched. The runner "
        "sends `12\\nGetVessels|` instead (payload `GetVessels|\\n`, which the node manager "
        "reads as `GetVessels` with no arguments)."
    )
    ours = Side("seattle_node_exporter nodemanager", d, "/probe?module=nodemanager&target=",
                targets_file, sim)  # fmt: skip
    peer = Side("blackbox_exporter tcp (GetVessels)", bb, "/probe?module=nodemanager_tcp&target=",
                targets_file, sim)  # fmt: skip
    try:
        sanity(ours, nodes[0])
        sanity(peer, nodes[0])

        def flat_target(o, p):
            return "ours ≥ 1,000/s", o["rps"] >= 1000

        def paced_target(o, p):
            return "ours ≤ ½ blackbox CPU", o["cpu_ms"] <= 0.5 * p["cpu_ms"]

        for c in a.concurrency:
            compare(bench, f"{len(nodes)} nodes, {c} conns, flat out", ours, peer, c, a.seconds,
                    a.rounds, flat_target)  # fmt: skip
        compare(bench, f"{len(nodes)} nodes, 64 conns, paced {a.nm_rate}/s", ours, peer, 64,
                a.seconds, a.rounds, paced_target, rate=a.nm_rate)  # fmt: skip
        bench_sweep(a, nodes, ours, peer)
    except Exception as e:  # noqa: BLE001
        skip(bench, f"failed: {e}")
    finally:
        d.stop()


SWEEPS = []


def bench_sweep(a, nodes, ours, peer):
    """Probe the first N nodes once each: total CPU and wall time per sweep size."""
    log(f"== sweep cost at {a.sweep} nodes, {a.sweep_conns} connections")
    for i, n in enumerate(a.sweep):
        n = min(n, len(nodes))
        for side in (ours, peer) if i % 2 == 0 else (peer, ours):
            c0, s0 = cpu_ticks(side.daemon.pid), cpu_ticks(side.sim.pid)
            t0 = time.perf_counter()
            ok, fail = sweep(side.port(), side.path_prefix, nodes[:n], a.sweep_conns)
            wall = time.perf_counter() - t0
            cpu = (cpu_ticks(side.daemon.pid) - c0) / TICK
            row = {
                "exporter": side.name,
                "nodes": n,
                "ok": ok,
                "fail": fail,
                "wall_s": wall,
                "cpu_s": cpu,
                "cpu_per_node_ms": 1000 * cpu / n,
                "sim_cpu_s": (cpu_ticks(side.sim.pid) - s0) / TICK,
            }
            SWEEPS.append(row)
            log(f"   {side.name:<32} {n:6d} nodes: {wall:.2f} s wall, {cpu:.2f} s CPU, "
                f"ok {ok}/{n}")  # fmt: skip


def bench_dns(a, tmp, ep, sim, bb, dns_target, bins):
    bench = "Zenodotus DNS probe"
    name = f"hello.{ep['zenodotus_zone']}"
    try:
        d = start_ours(
            bins["zenodotus"],
            tmp,
            f"modules:\n  zenodotus:\n    server: {dns_target}\n    check_host: false\n"
            "    compare_advertise: false\n    round_trip: false\n    zone_check: false\n",
            "seattle_zenodotus_exporter",
        )
    except Exception as e:  # noqa: BLE001
        skip(bench, str(e))
        return
    try:
        # Ours takes the name as its target, blackbox the server (the name is in its module).
        t_ours, t_peer = os.path.join(tmp, "dns-ours.txt"), os.path.join(tmp, "dns-peer.txt")
        with open(t_ours, "w") as f:
            f.write(name + "\n")
        with open(t_peer, "w") as f:
            f.write(dns_target + "\n")
        ours = Side("seattle_zenodotus_exporter zenodotus", d, "/probe?module=zenodotus&target=",
                    t_ours, sim)  # fmt: skip
        peer = Side("blackbox_exporter dns", bb, "/probe?module=zenodotus_dns&target=", t_peer,
                    sim)  # fmt: skip
        sanity(ours, name)
        sanity(peer, dns_target)

        def target(o, p):
            return "ours ≤ ½ blackbox CPU", o["cpu_ms"] <= 0.5 * p["cpu_ms"]

        compare(bench, f"{a.dns_conns} conns, flat out", ours, peer, a.dns_conns, a.seconds,
                a.rounds)  # fmt: skip
        compare(bench, f"{a.dns_conns} conns, paced {a.probe_rate}/s", ours, peer, a.dns_conns,
                a.seconds, a.rounds, target, rate=a.probe_rate)  # fmt: skip
    except Exception as e:  # noqa: BLE001
        skip(bench, f"failed: {e}")
    finally:
        d.stop()


def bench_updatesite(a, tmp, ep, sim, bb, bins):
    bench = "update site probe"
    key = os.path.join(tmp, "update.publickey")
    try:
        d = start_ours(
            bins["updatesite"],
            tmp,
            "modules:\n  updatesite:\n    prober: updatesite\n    updatesite:\n"
            f"      trusted_key_file: {key}\n",
            "seattle_updatesite_exporter",
        )
    except Exception as e:  # noqa: BLE001
        skip(bench, str(e))
        return
    try:
        base = ep["updatesite_url"]
        metainfo = base.rstrip("/") + "/metainfo"
        t_ours, t_peer = os.path.join(tmp, "us-ours.txt"), os.path.join(tmp, "us-peer.txt")
        with open(t_ours, "w") as f:
            f.write(urllib.parse.quote(base, safe="") + "\n")
        with open(t_peer, "w") as f:
            f.write(urllib.parse.quote(metainfo, safe="") + "\n")
        ours = Side("seattle_updatesite_exporter updatesite", d,
                    "/probe?module=updatesite&target=", t_ours, sim)  # fmt: skip
        peer = Side("blackbox_exporter http", bb, "/probe?module=updatesite_http&target=", t_peer,
                    sim)  # fmt: skip
        sanity(ours, base)
        sanity(peer, metainfo)

        def target(o, p):
            return "ours ≤ blackbox CPU", o["cpu_ms"] <= p["cpu_ms"]

        compare(bench, f"{a.dns_conns} conns, flat out", ours, peer, a.dns_conns, a.seconds,
                a.rounds)  # fmt: skip
        compare(bench, f"{a.dns_conns} conns, paced {a.probe_rate}/s", ours, peer, a.dns_conns,
                a.seconds, a.rounds, target, rate=a.probe_rate)  # fmt: skip
    except Exception as e:  # noqa: BLE001
        skip(bench, f"failed: {e}")
    finally:
        d.stop()


SIGNEDDATA = {}


def bench_signeddata(a):
    """The uncached verification cost: criterion's numbers for the production key."""
    bench = "signature check, uncached"
    if "signeddata" in BROKEN:
        skip(bench, "the signeddata bench does not build (cargo's error is above)")
        return
    env = dict(os.environ)
    argv = ["cargo", "bench", "-p", "seattle-protocol", "--bench", "signeddata", "--"]
    if a.no_build:  # the criterion executable cargo built last, as it is
        exes = [os.path.join(a.deps, f) for f in os.listdir(a.deps)
                if f.startswith("signeddata-") and "." not in f
                and os.access(os.path.join(a.deps, f), os.X_OK)] if os.path.isdir(a.deps) else []
        if not exes:
            skip(bench, "--no-build and no built signeddata bench")
            return
        argv = [max(exes, key=os.path.getmtime), "--bench"]
    argv += [
             "--noplot", "--warm-up-time", "1", "--measurement-time", "2" if a.quick else "5",
             "modpow_production_key|metainfo_verify_4096_e1024"]  # fmt: skip
    log("== " + " ".join(argv))
    try:
        out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, env=env,
                             timeout=a.signeddata_timeout)  # fmt: skip
    except subprocess.TimeoutExpired:
        skip(bench, f"cargo bench took over {a.signeddata_timeout}s")
        return
    if out.returncode != 0:
        skip(bench, "cargo bench failed: " + out.stderr.strip()[-300:])
        return
    unit = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}
    for m in re.finditer(
        r"signeddata/(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", out.stdout
    ):
        SIGNEDDATA[m.group(1)] = float(m.group(2)) * unit[m.group(3)]
    if not SIGNEDDATA:
        skip(bench, "no criterion numbers in the output")
    for k, v in SIGNEDDATA.items():
        log(f"   {k}: {v:.2f} ms")


PROCESS = {}


def bench_process(a, bins):
    """bench/process/bench.py: ours vs process-exporter, and the /proc/*/stat floor."""
    bench = "server-process scrape"
    script = os.path.join(BENCH, "process", "bench.py")
    floor = bins["process_floor"]
    if bins["process"] in BROKEN:
        skip(bench, "seattle_process_exporter does not build (cargo's error is above)")
        return
    if not os.access(bins["process"], os.X_OK) or not os.access(floor, os.X_OK):
        skip(bench, "seattle_process_exporter or the proc_stat_floor example is not built")
        return
    env = dict(os.environ, **{k: str(v) for k, v in a.process_env.items()})
    log(f"== {bench}: {' '.join(f'{k}={v}' for k, v in a.process_env.items())}")
    try:
        out = subprocess.run(
            [sys.executable, script, bins["process"], floor],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        skip(bench, "bench/process/bench.py took over 600s")
        return
    if out.returncode != 0:
        skip(bench, "bench/process/bench.py failed: " + out.stderr.strip()[-300:])
        return
    parse_process_output(out.stdout)
    if not PROCESS.get("rows"):
        skip(bench, "bench/process/bench.py printed no rows")


NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}


def bench_node_exporter_reference(a, tmp, bins):
    """A reference, not the same work: what a server scrape costs with node_exporter (all its
    default collectors; only its filesystem collector) beside ours (process groups + disks)."""
    import http.client

    bench = "server scrape, node_exporter reference"
    if not os.access(NODE_EXPORTER, os.X_OK) or bins["process"] in BROKEN:
        skip(bench, "prometheus-node-exporter or seattle_process_exporter is missing")
        return
    sides = []
    try:
        for name, argv in (
            ("seattle_process_exporter (groups + disks)",
             [bins["process"], "--profile", "clearinghouse"]),
            ("node_exporter, default collectors", [NODE_EXPORTER]),
            ("node_exporter, filesystem only",
             [NODE_EXPORTER, "--collector.disable-defaults", "--collector.filesystem"]),
        ):  # fmt: skip
            port = free_port()
            d = Daemon(f"reference-{len(sides)}",
                       argv + ["--web.listen-address", f"127.0.0.1:{port}"], tmp,
                       ready_url=f"http://127.0.0.1:{port}/metrics")  # fmt: skip
            sides.append((name, d, port, []))

        def scrape(port):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            t0 = time.perf_counter()
            c.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
            r = c.getresponse()
            r.read()
            c.close()
            return time.perf_counter() - t0

        for _, _, port, _ in sides:
            for _ in range(3):
                scrape(port)
        t0 = {d.pid: cpu_ticks(d.pid) for _, d, _, _ in sides}
        for i in range(a.reference_scrapes):
            for _, _, port, lat in sides if i % 2 == 0 else reversed(sides):
                lat.append(scrape(port))
        for name, d, _, lat in sides:
            lat.sort()
            REFERENCE.append({
                "exporter": name,
                "scrapes": len(lat),
                "cpu_ms": 1000 * (cpu_ticks(d.pid) - t0[d.pid]) / TICK / len(lat),
                "p50_ms": 1000 * lat[len(lat) // 2],
                "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
                "rss_mb": rss_mb(d.pid),
            })  # fmt: skip
    except Exception as e:  # noqa: BLE001
        skip(bench, f"failed: {e}")
    finally:
        for _, d, _, _ in sides:
            d.stop()


REFERENCE = []


def parse_process_output(text):
    """Reads the first markdown table bench/process/bench.py prints."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 7 and cells[0] not in ("case", "---") and not cells[0].startswith("-"):
            rows.append(cells)
    cases = {}
    for case, exporter, scrapes, cpu, p50, p99, rss in rows:
        cases.setdefault(case, {})[exporter] = {
            "scrapes": scrapes,
            "cpu_ms": float(cpu) if cpu else None,
            "p50_ms": float(p50) if p50 else None,
            "p99_ms": float(p99) if p99 else None,
            "rss_mb": float(rss) if rss else None,
        }
    PROCESS["rows"] = cases
    PROCESS["raw"] = text


# ---------------------------------------------------------------------------------------------
# Output


def fmt(v, digits=3):
    if v is None:
        return ""
    if v == float("inf"):
        return "∞"
    return f"{v:.{digits}f}"


def render(a, m, started, elapsed, load_end):
    out = []
    w = out.append
    w("# Benchmarks: our exporters against the peer exporters\n")
    w(f"Measured {started:%Y-%m-%d %H:%M} UTC in {elapsed / 60:.1f} minutes with\n")
    w(f"    {a.command}\n")
    w(f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} memory, kernel {m['kernel']}, "
      f"{m['processes']} processes; load average {' '.join(m['loadavg'])} at the start, "
      f"{' '.join(load_end)} at the end (other work was running: absolute numbers are noisy, "
      "ratios from alternating runs are the stable figure).\n")  # fmt: skip
    w(f"Peers: {peer_versions()}.\n")
    head = subprocess.run(["git", "-C", ROOT, "log", "-1", "--format=%h %s"], capture_output=True,
                          text=True).stdout.strip()  # fmt: skip
    built = ", ".join(
        f"`{os.path.basename(p)}` {datetime.datetime.fromtimestamp(os.path.getmtime(p), datetime.timezone.utc):%H:%M}"
        for p in BINS if os.path.exists(p)
    )
    w(f"Ours: release builds (built at, UTC): {built}; the tree's HEAD at the run: {head}.\n")
    w("CPU per probe/scrape = (utime + stime) delta of the exporter's `/proc/<pid>/stat` over "
      "the timed runs ÷ requests answered; latency p50/p99 are the median over rounds of wrk's "
      "percentiles; RSS is VmRSS after the last run. Runs alternate ours/peer "
      f"({a.rounds} rounds × {a.seconds} s per side per case, after a 1 s warm-up each). "
      "`sim CPU` is the simulator's CPU per probe (the work each probe causes on the "
      "probed side).\n")  # fmt: skip

    if SKIPS:
        w("## Skipped\n")
        for b, why in SKIPS:
            w(f"- SKIP **{b}**: {why}")
        w("")

    if RATIOS or PROCESS.get("rows"):
        w("## Summary (peer ÷ ours: above 1 means ours is cheaper / faster)\n")
        w("| bench | case | CPU per op | throughput (ours ÷ peer) | p50 | p99 | RSS | target | met |")
        w("|---|---|---|---|---|---|---|---|---|")
        for r in RATIOS:
            w(f"| {r['bench']} | {r['case']} | {fmt(r['cpu'], 2)}× | {fmt(r['rps'], 2)}× "
              f"| {fmt(r['p50'], 2)}× | {fmt(r['p99'], 2)}× | {fmt(r['rss'], 2)}× "
              f"| {r.get('target', '')} | {'yes' if r.get('met') else ('**no**' if 'met' in r else '')} |")  # fmt: skip
        for case, ex in PROCESS.get("rows", {}).items():
            o = next((v for k, v in ex.items() if k.startswith("seattle")), None)
            for peer_name, p in ex.items():
                if not peer_name.startswith("process-exporter") or not o or not o["cpu_ms"]:
                    continue
                w(f"| server-process scrape vs {peer_name} | {case} "
                  f"| {fmt(p['cpu_ms'] / o['cpu_ms'], 2)}× | "
                  f"| {fmt(p['p50_ms'] / o['p50_ms'], 2)}× | {fmt(p['p99_ms'] / o['p99_ms'], 2)}× "
                  f"| {fmt(p['rss_mb'] / o['rss_mb'], 2)}× | | |")  # fmt: skip
        w("")
        w("![CPU per probe or scrape, ours and the peer's](results.png)\n")

    if RESULTS:
        w("## Probes\n")
        w("`probes/s per core` = 1000 ÷ CPU per probe: what one core would sustain if the "
          "exporter had it to itself (the measured probes/s is bounded by the CPU the busy "
          "machine leaves to the exporter, the simulator and wrk together).\n")
        w("| bench | case | exporter | probes | ok % | CPU/probe ms | sim CPU/probe ms "
          "| probes/s | probes/s per core | p50 ms | p99 ms | RSS MB |")  # fmt: skip
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in RESULTS:
            w(f"| {r['bench']} | {r['case']} | {r['exporter']} | {r['requests']} "
              f"| {fmt(r['ok_pct'], 1)} | {fmt(r['cpu_ms'])} | {fmt(r['sim_cpu_ms'])} "
              f"| {fmt(r['rps'], 0)} | {fmt(1000 / r['cpu_ms'] if r['cpu_ms'] else None, 0)} "
              f"| {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} "
              f"| {fmt(r['rss_mb'], 1)} |")  # fmt: skip
        w("")

    if SWEEPS:
        w("## Sweep cost (every node probed once)\n")
        w(f"{a.sweep_conns} keep-alive connections from a Python asyncio client; CPU per node "
          "should stay flat if the cost is linear in the fleet size.\n")  # fmt: skip
        w("| exporter | nodes | ok | wall s | nodes/s | CPU s | CPU/node ms | sim CPU s |")
        w("|---|---|---|---|---|---|---|---|")
        for s in SWEEPS:
            w(f"| {s['exporter']} | {s['nodes']} | {s['ok']} | {fmt(s['wall_s'], 2)} "
              f"| {fmt(s['nodes'] / s['wall_s'], 0)} | {fmt(s['cpu_s'], 2)} "
              f"| {fmt(s['cpu_per_node_ms'])} | {fmt(s['sim_cpu_s'], 2)} |")  # fmt: skip
        w("")
        for name in dict.fromkeys(s["exporter"] for s in SWEEPS):
            rows = sorted((s for s in SWEEPS if s["exporter"] == name), key=lambda s: s["nodes"])
            if len(rows) >= 2 and rows[0]["cpu_per_node_ms"] > 0:
                lo, hi = rows[0], rows[-1]
                w(f"- {name}: CPU per node {fmt(lo['cpu_per_node_ms'])} ms at {lo['nodes']} "
                  f"nodes, {fmt(hi['cpu_per_node_ms'])} ms at {hi['nodes']} "
                  f"({fmt(hi['cpu_per_node_ms'] / lo['cpu_per_node_ms'], 2)}× for "
                  f"{hi['nodes'] / lo['nodes']:.0f}× the nodes; 1.00× is linear).")
        w("")

    if PROCESS.get("raw"):
        w("## Server-process scrapes (bench/process/bench.py)\n")
        w(PROCESS["raw"].strip() + "\n")
    if REFERENCE:
        w("### Reference: a server scrape with node_exporter (not the same work)\n")
        w("What operators run on a server today beside process-exporter; ours covers process "
          "groups and disks, node_exporter's defaults cover much more (CPU, memory, network…). "
          "Alternating scrapes with Prometheus' headers.\n")  # fmt: skip
        w("| exporter | scrapes | CPU/scrape ms | p50 ms | p99 ms | RSS MB |")
        w("|---|---|---|---|---|---|")
        for r in REFERENCE:
            w(f"| {r['exporter']} | {r['scrapes']} | {fmt(r['cpu_ms'])} | {fmt(r['p50_ms'], 2)} "
              f"| {fmt(r['p99_ms'], 2)} | {fmt(r['rss_mb'], 1)} |")  # fmt: skip
        w("")

    if SIGNEDDATA:
        w("## Signature check without the cache (criterion, `cargo bench -p seattle-protocol "
          "--bench signeddata`)\n")  # fmt: skip
        w("| benchmark | time per check ms |")
        w("|---|---|")
        for k, v in SIGNEDDATA.items():
            w(f"| {k} | {v:.2f} |")
        w("")
        us = [r for r in RESULTS if r["bench"] == "update site probe"]
        mp = SIGNEDDATA.get("modpow_production_key")
        if us and mp:
            o, p = us[-2], us[-1]
            w(f"Without its verdict cache, each update-site probe of ours would add about "
              f"{mp:.1f} ms of CPU (one `c^e mod n` with the production key's huge exponent) to "
              f"the {o['cpu_ms']:.2f} ms measured above: "
              f"{(o['cpu_ms'] + mp) / p['cpu_ms']:.0f}× blackbox's {p['cpu_ms']:.2f} ms. The "
              "cache keys on the SHA-1 of the body and of the trusted key, so only a new "
              "metainfo pays it once.\n")
    if PROFILES:
        w("## Profiles where a target was missed\n")
        w("`perf record -e cpu-clock -g` on our exporter during one more run of the case "
          "(hardware counters are not available here); self time, entries ≥ 1 %.\n")
        for title, dsos, syms in PROFILES:
            w(f"### {title}\n")
            w("```")
            w("\n".join(dsos))
            w("")
            w("\n".join(syms))
            w("```\n")
    for n in NOTES:
        w(n + "\n")
    return "\n".join(out)


def peer_versions():
    vs = []
    for pkg in ("prometheus-blackbox-exporter", "prometheus-process-exporter"):
        v = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True,
                           text=True).stdout.strip()  # fmt: skip
        vs.append(f"{pkg} {v or '(not installed)'} (Debian)")
    return ", ".join(vs)


def chart(path, tmp):
    """Grouped bars, log scale: CPU per op of ours and the peer per case."""
    rows = []
    i = 0
    while i + 1 < len(RESULTS):
        o, p = RESULTS[i], RESULTS[i + 1]
        case = re.sub(r"^\d+ nodes, ", "", o["case"]).replace(", ", "\\n")
        label = f"{o['bench'].replace(' probe', '').replace('Zenodotus ', '')}\\n{case}"
        rows.append((label, o["cpu_ms"], p["cpu_ms"]))
        i += 2
    for case, ex in PROCESS.get("rows", {}).items():
        o = next((v for k, v in ex.items() if k.startswith("seattle")), None)
        p = next((v for k, v in ex.items() if k.startswith("process-exporter")), None)
        if o and p:
            n = re.search(r"(\d[\d,]*) processes", case)
            rows.append((f"process scrape\\n{n.group(1) if n else case} procs", o["cpu_ms"],
                         p["cpu_ms"]))  # fmt: skip
    if not rows or not shutil.which("gnuplot"):
        return False
    data = os.path.join(tmp, "chart.dat")
    with open(data, "w") as f:
        for label, o, p in rows:
            f.write(f'"{label}" {max(o, 1e-4)} {max(p, 1e-4)}\n')
    script = f"""
set terminal pngcairo size 1500,650 font ",10" noenhanced
set output "{path}"
set title "CPU per probe / scrape (ms, log scale; lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [0.01:*]
set ylabel "ms of CPU"
set key top left
set grid ytics
set xtics scale 0
set bmargin 6
plot "{data}" using 2:xtic(1) title "ours (seattle_*)" lc rgb "#2b7bba", \\
     "" using 3 title "peer (blackbox / process-exporter)" lc rgb "#d95f02"
"""
    r = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    if r.returncode != 0:
        log("gnuplot: " + r.stderr[-300:])
        return False
    return True


# ---------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small sizes, short runs")
    ap.add_argument("--only", default="process,nodemanager,dns,updatesite,signeddata",
                    help="comma-separated subset of: process,nodemanager,dns,updatesite,"
                         "signeddata")  # fmt: skip
    ap.add_argument("--nodes", type=int, default=10000, help="simulated nodes")
    ap.add_argument("--concurrency", default="16,64,256", help="node-manager probe connections")
    ap.add_argument("--sweep", default="1000,5000,10000", help="sweep sizes (nodes)")
    ap.add_argument("--sweep-conns", type=int, default=64)
    ap.add_argument("--dns-conns", type=int, default=16,
                    help="connections for the DNS and update-site probes")  # fmt: skip
    ap.add_argument("--nm-rate", type=int, default=1000,
                    help="paced node-manager case: probes/s for both exporters")
    ap.add_argument("--probe-rate", type=int, default=300,
                    help="paced DNS and update-site cases: probes/s for both exporters")
    ap.add_argument("--seconds", type=int, default=4, help="length of one timed run")
    ap.add_argument("--rounds", type=int, default=4, help="alternating runs per side per case")
    ap.add_argument("--extra-processes", type=int, default=2000)
    ap.add_argument("--reference-scrapes", type=int, default=100,
                    help="scrapes per exporter in the node_exporter reference")
    ap.add_argument("--bin", default=None, help="directory of the release binaries")
    ap.add_argument("--out", default=None,
                    help="markdown file (default bench/RESULTS.md; with --quick, a temp dir)")
    ap.add_argument("--signeddata-timeout", type=int, default=420)
    ap.add_argument("--no-profile", action="store_true",
                    help="do not sample ours with perf where a target is missed")
    ap.add_argument("--no-build", action="store_true",
                    help="use the binaries as built (bench/run skips cargo too)")
    ap.add_argument("--command", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--broken", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.quick:
        a.nodes, a.concurrency, a.sweep = min(a.nodes, 1000), "16,64", "200,500,1000"
        a.seconds, a.rounds = 2, 2
        a.extra_processes = min(a.extra_processes, 300)
    a.concurrency = [int(x) for x in a.concurrency.split(",") if x]
    a.sweep = [int(x) for x in a.sweep.split(",") if x]
    a.command = a.command or "bench/run " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    a.process_env = (
        {"N_BASE": 20, "N_LOADED": 4, "EXTRA": a.extra_processes, "RATIO": 5}
        if a.quick
        else {"N_BASE": 60, "N_LOADED": 10, "EXTRA": a.extra_processes, "RATIO": 10}
    )
    only = set(a.only.split(","))
    a.deps = os.path.join(a.bin or os.path.join(os.environ.get("CARGO_TARGET_DIR") or
                                                 os.path.join(ROOT, "target"), "release"), "deps")
    target_dir = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    bindir = a.bin or os.path.join(target_dir, "release")
    bins = {
        "sim": os.path.join(bindir, "seattle_simulator"),
        "node": os.path.join(bindir, "seattle_node_exporter"),
        "zenodotus": os.path.join(bindir, "seattle_zenodotus_exporter"),
        "updatesite": os.path.join(bindir, "seattle_updatesite_exporter"),
        "process": os.path.join(bindir, "seattle_process_exporter"),
        "process_floor": os.path.join(bindir, "examples", "proc_stat_floor"),
    }
    BINS.extend(bins[k] for k in ("sim", "process", "node", "zenodotus", "updatesite"))
    for name in a.broken.split():
        BROKEN.add(bins.get(name, name))
        if name == "process":
            BROKEN.add(bins["process_floor"])
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.time()
    m = machine()
    log(f"machine: {m}")
    tmp = tempfile.mkdtemp(prefix="seattle-bench-")
    PROFILE["enabled"], PROFILE["tmp"] = not a.no_profile, tmp
    if a.out is None:  # a smoke run never overwrites the recorded results
        a.out = os.path.join(tmp if a.quick else BENCH, "RESULTS.md")

    def guarded(bench, fn, *args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - one broken comparison must not lose the rest
            skip(bench, f"runner error: {e!r}")

    if "process" in only:
        guarded("server-process scrape", bench_process, a, bins)
        guarded("node_exporter reference", bench_node_exporter_reference, a, tmp, bins)

    probes = only & {"nodemanager", "dns", "updatesite"}
    sim = bb = None
    try:
        if probes:
            if not shutil.which("wrk"):
                for b in sorted(probes):
                    skip(b, "wrk is not installed")
                probes = set()
            elif not os.access(BLACKBOX, os.X_OK):
                for b in sorted(probes):
                    skip(b, f"{BLACKBOX} is not installed")
                probes = set()
            elif bins["sim"] in BROKEN or not os.access(bins["sim"], os.X_OK):
                for b in sorted(probes):
                    skip(b, "seattle_simulator is not built")
                probes = set()
        if probes:
            ep_file = os.path.join(tmp, "endpoints.json")
            log(f"== starting seattle_simulator with {a.nodes} nodes")
            sim = Daemon(
                "seattle_simulator",
                [bins["sim"], "--scenario", os.path.join(BENCH, "scenario.yaml"),
                 "--nodes", str(a.nodes), "--endpoints-file", ep_file,
                 "--write-update-key", os.path.join(tmp, "update.publickey"),
                 "--log-level", "error"],
                tmp,
                ready_file=ep_file,
                timeout=300,
            )  # fmt: skip
            with open(ep_file) as f:
                ep = json.load(f)
            log(f"   {ep['node_count']} nodes, RSS {rss_mb(sim.pid):.0f} MB")
            bb, dns_target = start_blackbox(tmp, ep, sim)
            if "nodemanager" in probes:
                guarded("node manager probe", bench_nodemanager, a, tmp, ep, sim, bb, bins)
            if "dns" in probes:
                guarded("Zenodotus DNS probe", bench_dns, a, tmp, ep, sim, bb, dns_target, bins)
            if "updatesite" in probes:
                guarded("update site probe", bench_updatesite, a, tmp, ep, sim, bb, bins)
    except Exception as e:  # noqa: BLE001 - the simulator or blackbox did not start
        skip("probes", f"runner error: {e!r}")
    finally:
        for d in (bb, sim):
            if d:
                d.stop()

    if "signeddata" in only:
        guarded("signature check, uncached", bench_signeddata, a)

    png = os.path.join(os.path.dirname(os.path.abspath(a.out)), "results.png")
    try:
        have_chart = chart(png, tmp)
    except Exception as e:  # noqa: BLE001
        log(f"chart: {e!r}")
        have_chart = False
    text = render(a, m, started, time.time() - t0, open("/proc/loadavg").read().split()[:3])
    if not have_chart:
        text = text.replace("![CPU per probe or scrape, ours and the peer's](results.png)\n", "")
    with open(a.out, "w") as f:
        f.write(text + "\n")
    print(text)
    log(f"written: {a.out}" + (f" and {png}" if have_chart else "") + f"; logs in {tmp}")


if __name__ == "__main__":
    main()
