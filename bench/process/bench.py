#!/usr/bin/env python3
"""CPU per scrape, latency and RSS: seattle_process_exporter vs process-exporter.

Started by run.sh (which builds the binaries). Both exporters watch the same nine
clearinghouse groups. Scrapes alternate: one process-exporter scrape, then RATIO of
ours (ours is much cheaper, so it needs more scrapes for the 10 ms CPU-tick counter to
resolve it). CPU per scrape = (utime + stime) delta of the exporter's /proc/<pid>/stat
divided by its scrapes. Then the same with 2,000 extra idle `sleep` processes. A floor
(read and parse every /proc/<pid>/stat once per iteration, nothing else) is run too.
"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

OURS = sys.argv[1]
FLOOR = sys.argv[2]
PEER = os.environ.get("PEER", "/usr/bin/prometheus-process-exporter")
RATIO = int(os.environ.get("RATIO", "10"))
N_BASE = int(os.environ.get("N_BASE", "100"))  # process-exporter scrapes, ~90 processes
N_LOADED = int(os.environ.get("N_LOADED", "15"))  # process-exporter scrapes, +2,000 processes
EXTRA = int(os.environ.get("EXTRA", "2000"))
TICK = os.sysconf("SC_CLK_TCK")
# What Prometheus 2.42 sends on a scrape: both exporters answer as they would to it.
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}

SCRIPTS = [
    "transition_donation_to_canonical",
    "transition_onepercentmanyevents_to_canonical",
    "transition_canonical_to_twopercent",
    "transition_twopercent_to_twopercent",
    "check_active_db_nodes",
    "backend_daemon",
    "lockserver_daemon",
]


def peer_config():
    lines = ["process_names:"]
    for s in SCRIPTS:
        lines += [f"  - name: {s}", "    cmdline:", f"    - '(^|[\\s/]){s}\\.py(\\s|$)'"]
    lines += ["  - name: apache2", "    comm: [apache2]"]
    lines += ["  - name: mysqld", "    exe: [/usr/sbin/mysqld]"]
    return "\n".join(lines) + "\n"


def peer_all_config():
    # process-exporter's common setup (and ECOSYSTEM's baseline): every process, grouped by comm.
    return "process_names:\n  - name: '{{.Comm}}'\n    cmdline: ['.+']\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def count_procs():
    return sum(1 for d in os.listdir("/proc") if d.isdigit())


class Exporter:
    def __init__(self, name, argv, port):
        self.name, self.port = name, port
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                self.scrape()
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)
        self.reset()

    def reset(self):
        self.latencies, self.scrapes, self.t0 = [], 0, cpu_ticks(self.proc.pid)

    def scrape(self):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        start = time.perf_counter()
        c.request("GET", "/metrics", headers=PROMETHEUS_HEADERS)
        r = c.getresponse()
        body = r.read()
        elapsed = time.perf_counter() - start
        c.close()
        if r.status != 200 or not body:
            raise RuntimeError(f"{self.name}: HTTP {r.status}")
        return elapsed

    def timed_scrape(self):
        self.latencies.append(self.scrape())
        self.scrapes += 1

    def result(self):
        lat = sorted(self.latencies)
        pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]  # noqa: E731
        return {
            "cpu_ms": (cpu_ticks(self.proc.pid) - self.t0) / TICK / self.scrapes * 1000,
            "p50_ms": pct(0.50) * 1000,
            "p99_ms": pct(0.99) * 1000,
            "rss_mb": rss_kib(self.proc.pid) / 1024,
            "scrapes": self.scrapes,
        }

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_phase(ours, peer, peer_all, n_peer):
    for e in (ours, peer, peer_all):
        for _ in range(3):  # warm caches (ours caches per-process classification)
            e.scrape()
        e.reset()
    for _ in range(n_peer):
        peer.timed_scrape()
        peer_all.timed_scrape()
        for _ in range(RATIO):
            ours.timed_scrape()
    return ours.result(), peer.result(), peer_all.result()


def floor(iterations):
    out = subprocess.run([FLOOR, str(iterations)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    tmp = tempfile.mkdtemp(prefix="bench-process-")
    cfg = os.path.join(tmp, "process-exporter.yml")
    with open(cfg, "w") as f:
        f.write(peer_config())
    cfg_all = os.path.join(tmp, "process-exporter-all.yml")
    with open(cfg_all, "w") as f:
        f.write(peer_all_config())
    p1, p2, p3 = free_port(), free_port(), free_port()
    ours = Exporter(
        "ours", [OURS, "--profile", "clearinghouse", "--web.listen-address", f"127.0.0.1:{p1}"], p1
    )
    peer = Exporter(
        "process-exporter",
        [PEER, "-config.path", cfg, "-web.listen-address", f"127.0.0.1:{p2}"],
        p2,
    )
    peer_all = Exporter(
        "process-exporter-all",
        [PEER, "-config.path", cfg_all, "-web.listen-address", f"127.0.0.1:{p3}"],
        p3,
    )
    rows = []
    sleepers = []
    try:
        n = count_procs()
        o, p, pa = run_phase(ours, peer, peer_all, N_BASE)
        rows.append((f"~{n} processes", o, p, pa, floor(1000)))
        for _ in range(EXTRA):
            sleepers.append(
                subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, start_new_session=True)
            )
        n = count_procs()
        o, p, pa = run_phase(ours, peer, peer_all, N_LOADED)
        rows.append((f"~{n} processes (+{EXTRA} idle)", o, p, pa, floor(100)))
    finally:
        for s in sleepers:
            s.kill()
        for s in sleepers:
            s.wait()
        ours.stop()
        peer.stop()
        peer_all.stop()

    print("| case | exporter | scrapes | CPU/scrape ms | p50 ms | p99 ms | RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for case, o, p, pa, fl in rows:
        for name, r in (
            ("seattle_process_exporter", o),
            ("process-exporter, same 9 groups", p),
            ("process-exporter, all by comm", pa),
        ):
            print(
                f"| {case} | {name} | {r['scrapes']} | {r['cpu_ms']:.3f} | {r['p50_ms']:.2f} "
                f"| {r['p99_ms']:.2f} | {r['rss_mb']:.1f} |"
            )
        print(
            f"| {case} | floor: read+parse every stat | {fl['iterations']} "
            f"| {fl['cpu_seconds_per_iteration'] * 1000:.3f} | | | |"
        )
    print()
    print(
        "| case | CPU: process-exporter (9 groups) / ours | CPU: process-exporter (all by comm) "
        "/ ours | ours / floor | p50: process-exporter (9 groups) / ours |"
    )
    print("|---|---|---|---|---|")
    for case, o, p, pa, fl in rows:
        div = lambda a, b: a / b if b > 0 else float("inf")  # noqa: E731
        fl_ms = fl["cpu_seconds_per_iteration"] * 1000
        print(
            f"| {case} | {div(p['cpu_ms'], o['cpu_ms']):.1f}x | {div(pa['cpu_ms'], o['cpu_ms']):.1f}x "
            f"| {div(o['cpu_ms'], fl_ms):.2f}x | {div(p['p50_ms'], o['p50_ms']):.1f}x |"
        )


if __name__ == "__main__":
    main()
