#!/usr/bin/python3
"""End-to-end test of the monitoring stack (run by scripts/check-e2e; see tests/e2e/README.md).

Starts the simulator (tests/e2e/scenario.yaml), the exporters whose binaries exist, the real Prometheus
and Alertmanager with the repository's own prometheus/prometheus.yml, alerts/rules.yml and
alertmanager/alertmanager.yml (only addresses, intervals, `for:` durations and receivers' URLs/hosts
rewritten), a webhook receiver and an SMTP sink (both in this process). Then injects faults, checks
that each alert reaches exactly the receivers of its audience and resolves once the fault is removed,
reports the time from fault to notification, and runs every dashboard panel's query against that
Prometheus. Every process it starts is stopped on exit, also on failure or a signal.

Debian's /usr/bin/python3 with python3-yaml and python3-aiosmtpd; nothing else.
"""

import argparse
import email
import email.policy
import html
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
T0 = time.time()

# Rewritten `for:` of every alert: the repository's are minutes to an hour, too long for a test. Short
# but not zero, so every alert still goes through pending before firing.
ALERT_FOR = "2s"
# Scrape/evaluation interval; jobs that are slow by design (users, full update-site check, installer
# builds) get the longer one.
FAST, SLOW = "1s", "3s"
SLOW_JOBS = {"seattle_users", "seattle_updatesite_full", "seattle_cib_build"}
FAULT_TIMEOUT = 60  # seconds to wait for each notification (measured: a few seconds)


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def http_post_json(url, body, timeout=5):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def wait_until(what, fn, timeout, interval=0.2):
    """Polls fn() until it returns a true value; returns it, or raises after timeout seconds."""
    deadline = time.time() + timeout
    last_err = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 -- a daemon that is not up yet refuses connections
            last_err = e
        time.sleep(interval)
    raise TimeoutError(f"{what}: not within {timeout} s" + (f" (last error: {last_err})" if last_err else ""))


# ---------------------------------------------------------------------------------------------
# Processes


class Processes:
    """Every process the test starts, each in its own session so its whole group can be stopped.
    The pids are also written to a file, so scripts/check-e2e can stop them if this process dies."""

    def __init__(self, workdir, pidfile):
        self.workdir = workdir
        self.pidfile = pidfile
        self.procs = []  # (name, Popen)

    def start(self, name, argv, executable=None):
        logf = open(os.path.join(self.workdir, f"{name}.log"), "wb")
        p = subprocess.Popen(argv, executable=executable, stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.workdir)
        logf.close()
        self.procs.append((name, p))
        if self.pidfile:
            with open(self.pidfile, "a") as f:
                f.write(f"{p.pid}\n")
        return p

    def log_tail(self, name, lines=15):
        try:
            with open(os.path.join(self.workdir, f"{name}.log"), errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self, names):
        for name, p in self.procs:
            if name in names and p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.log_tail(name)}")

    @staticmethod
    def stop_one(p, grace=5):
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)

    def stop_all(self):
        for _, p in reversed(self.procs):
            try:
                self.stop_one(p)
            except Exception as e:  # noqa: BLE001 -- keep stopping the others
                print(f"e2e: could not stop pid {p.pid}: {e}", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Receivers: a webhook endpoint and an SMTP sink, recording every notification with its arrival time.


class Inbox:
    def __init__(self, email_to_receiver):
        self.lock = threading.Lock()
        self.events = []
        self.email_to_receiver = email_to_receiver

    def add(self, ev):
        with self.lock:
            self.events.append(ev)

    def snapshot(self):
        with self.lock:
            return list(self.events)


def start_webhook(inbox):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            t = time.time()
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                payload = json.loads(body)
                inbox.add({"t": t, "kind": "webhook", "receiver": payload.get("receiver"),
                           "path": self.path, "status": payload.get("status"),
                           "alerts": [{"labels": a.get("labels", {}), "status": a.get("status")}
                                      for a in payload.get("alerts", [])]})
                self.send_response(200)
            except ValueError:
                self.send_response(400)
            self.end_headers()

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def start_smtp(inbox):
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            t = time.time()
            msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
            subject = str(msg.get("Subject", ""))
            part = msg.get_body(preferencelist=("plain", "html"))
            body = part.get_content() if part is not None else ""
            text = html.unescape(re.sub(r"<[^>]+>", " ", body))
            status = "resolved" if subject.startswith("[RESOLVED]") else "firing" if subject.startswith("[FIRING") else "?"
            for rcpt in envelope.rcpt_tos:
                inbox.add({"t": t, "kind": "email", "to": rcpt,
                           "receiver": inbox.email_to_receiver.get(rcpt.lower(), f"unknown<{rcpt}>"),
                           "status": status, "subject": subject, "text": subject + "\n" + text})
            return "250 OK"

    port = free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port)
    ctl.start()
    return ctl, port


def start_irc(inbox, channel_receiver):
    """A minimal IRC server for Debian's alertmanager-irc-relay: welcomes it, confirms its JOINs,
    answers PINGs and records every PRIVMSG/NOTICE to a channel as a notification of the receiver
    whose webhook posts to that channel."""
    import socketserver

    joined = threading.Event()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self):
            nick, user, welcomed = None, False, False

            def send(line):
                self.wfile.write((line + "\r\n").encode())
                self.wfile.flush()

            for raw in self.rfile:
                parts = raw.decode(errors="replace").rstrip("\r\n").split(" ")
                cmd = parts[0].upper()
                if cmd == "NICK" and len(parts) > 1:
                    nick = parts[1]
                elif cmd == "USER":
                    user = True
                elif cmd == "PING":
                    send(f":e2e.irc PONG e2e.irc {' '.join(parts[1:])}")
                elif cmd == "JOIN" and len(parts) > 1:
                    for ch in parts[1].split(","):
                        send(f":{nick}!relay@127.0.0.1 JOIN {ch}")
                        send(f":e2e.irc 366 {nick} {ch} :End of /NAMES list.")
                    joined.set()
                elif cmd in ("PRIVMSG", "NOTICE") and len(parts) > 2 and parts[1] in channel_receiver:
                    text = " ".join(parts[2:]).lstrip(":")
                    m = re.match(r"\[(\w+)\]", text)
                    inbox.add({"t": time.time(), "kind": "irc", "receiver": channel_receiver[parts[1]],
                               "status": m.group(1) if m else "?", "text": text})
                elif cmd == "QUIT":
                    return
                if nick and user and not welcomed:
                    welcomed = True
                    send(f":e2e.irc 001 {nick} :Welcome")
                    send(f":e2e.irc 376 {nick} :End of /MOTD command.")

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True

    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, joined


def notification_matches(ev, alertname, labels, status):
    """Whether a recorded notification carries this alert (these labels) in this status."""
    want = dict(labels, alertname=alertname)
    if ev["kind"] == "webhook":
        return any(a["status"] == status and all(a["labels"].get(k) == v for k, v in want.items())
                   for a in ev["alerts"])
    if ev["kind"] == "irc":
        # alertmanager/irc-relay.yml's template: "[status] alertname (severity, n alert(s)): summary",
        # one line per group; the labels are checked at the receivers that carry them.
        return ev["status"] == status and re.search(rf"\b{re.escape(alertname)}\b", ev["text"]) is not None
    # E-mail (Alertmanager's default template): the subject says the group's status and its labels,
    # the HTML body lists every alert's labels as `name = value`.
    if ev["status"] != status or alertname not in ev["subject"]:
        return False
    return all(re.search(rf"\b{re.escape(k)} = {re.escape(v)}(\s|$)", ev["text"]) for k, v in labels.items())


# ---------------------------------------------------------------------------------------------
# Exporters. Adding one: an entry here (binary, flags it needs, jobs it serves) and a config writer.


class Exporter:
    def __init__(self, key, binary, jobs, flags=(), in_exporters_job=False):
        self.key, self.binary, self.jobs, self.flags = key, binary, jobs, flags
        self.in_exporters_job = in_exporters_job
        self.port = None
        self.why_missing = None

    def find(self, bindir):
        path = os.path.join(bindir, self.binary)
        if not os.access(path, os.X_OK):
            self.why_missing = f"{self.binary} not built"
            return None
        try:
            out = subprocess.run([path, "--help"], capture_output=True, timeout=10, text=True)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.why_missing = f"{self.binary} --help: {e}"
            return None
        helptext = out.stdout + out.stderr
        missing = [f for f in ("--web.listen-address",) + tuple(self.flags) if f not in helptext]
        if out.returncode != 0 or missing:
            self.why_missing = f"{self.binary} has no {', '.join(missing) or '--help'}"
            return None
        return path

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"


EXPORTERS = [
    Exporter("process", "seattle_process_exporter", ["seattle_process"], ["--config.file"]),
    Exporter("node", "seattle_node_exporter",
             ["seattle_nodemanager", "seattle_advertise_tcp", "seattle_advertise_udp", "seattle_users"],
             ["--config.file"], in_exporters_job=True),
    Exporter("node_local", "seattle_node_exporter", ["seattle_node_local"], ["--install.dir"]),
    Exporter("updatesite", "seattle_updatesite_exporter",
             ["seattle_updatesite", "seattle_updatesite_full", "seattle_clearinghouse", "seattle_cib",
              "seattle_cib_build", "seattle_lockserver"], ["--config.file"], in_exporters_job=True),
    Exporter("install", "seattle_updatesite_exporter", ["seattle_install"],
             ["--install.dir", "--install.site-url", "--install.trusted-key-file"]),
    Exporter("zenodotus", "seattle_zenodotus_exporter", ["seattle_zenodotus", "seattle_zenodotus_zone"],
             ["--config.file"], in_exporters_job=True),
]
EXPORTER = {e.key: e for e in EXPORTERS}
# The repository's names for the exporters in prometheus.yml (docker-compose service names).
COMPOSE_NAMES = {"process-exporter": "process", "node-exporter": "node",
                 "updatesite-exporter": "updatesite", "zenodotus-exporter": "zenodotus"}


class Stack:
    def __init__(self, args):
        self.args = args
        self.work = args.workdir
        self.procs = Processes(self.work, args.pidfile)
        self.critical_child = None
        self.running = set()  # exporter keys running
        self.exporters = EXPORTERS
        self.results = []  # (status, name, detail)

    # -- simulator -----------------------------------------------------------------------------
    def start_simulator(self):
        ep_file = os.path.join(self.work, "endpoints.json")
        self.update_key = os.path.join(self.work, "update.publickey")
        self.tls_ca = os.path.join(self.work, "simulator-ca.pem")
        self.procs.start("simulator", [os.path.join(self.args.bindir, "seattle_simulator"),
                                       "--scenario", os.path.join(ROOT, "tests/e2e/scenario.yaml"),
                                       "--endpoints-file", ep_file, "--write-update-key", self.update_key,
                                       "--write-tls-ca", self.tls_ca,
                                       "--log-level", "warn"])
        wait_until("simulator endpoints file", lambda: os.path.exists(ep_file) or self.procs.check_alive({"simulator"}), 60)
        self.ep = json.load(open(ep_file))
        self.control = self.ep["control_url"]  # http://127.0.0.1:P/control/
        self.truth = json.loads(http_get(self.control + "truth"))
        log(f"simulator: {self.ep['node_count']} nodes, advertise {self.ep['advertise_tcp']}, control {self.control}")

    def sim(self, path, body):
        return http_post_json(self.control + path, body)

    # -- exporters -----------------------------------------------------------------------------
    def start_critical_child(self):
        # argv[0] is the marker the process exporter's e2e_critical group matches.
        self.critical_child = self.procs.start("critical-child", ["seattle-e2e-critical", "100000"],
                                               executable="/bin/sleep")

    def start_exporters(self):
        self.start_critical_child()
        for e in EXPORTERS:
            path = e.find(self.args.bindir)
            if not path:
                log(f"SKIP (exporter missing) {e.key}: {e.why_missing}")
                continue
            e.port = free_port()
            argv = [path, f"--web.listen-address={e.address}"] + getattr(self, f"config_{e.key}")()
            self.procs.start(f"exporter-{e.key}", argv)
            self.running.add(e.key)
        for key in sorted(self.running):
            e = EXPORTER[key]
            wait_until(f"{e.key} exporter /-/ready",
                       lambda: self.procs.check_alive({f"exporter-{key}"}) or http_get(f"http://{e.address}/-/ready"), 30)
            log(f"exporter {e.key} ready on {e.address}")

    def write(self, name, data):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            if isinstance(data, str):
                f.write(data)
            else:
                yaml.safe_dump(data, f, sort_keys=False)
        return path

    def config_process(self):
        # One group the test kills (a child process of this test), one that is always there (the
        # Prometheus started here, with its listen check, so the listening panel has data).
        self.prom_port = getattr(self, "prom_port", None) or free_port()
        cfg = {"process_groups": [
            {"name": "e2e_critical", "match": {"cmdline": r"(^|\s)seattle-e2e-critical(\s|$)"}, "min": 1},
            {"name": "e2e_prometheus", "match": {"comm": ["prometheus"]}, "min": 1,
             "listen": [f"127.0.0.1:{self.prom_port}"]},
        ]}
        return ["--config.file", self.write("process.yml", cfg)]

    def config_node(self):
        cfg = {
            "advertise_services": [
                {"name": "central", "address": self.ep["advertise_tcp"], "protocol": "tcp"},
                {"name": "udp", "address": self.ep["advertise_udp"], "protocol": "udp"},
            ],
            "users": [{"name": u["name"], "public_key": u["key"]} for u in self.truth["users"]],
            "discovery": {"refresh_interval": "2s"},
        }
        return ["--config.file", self.write("node.yml", cfg)]

    def config_node_local(self):
        self.install_dir = os.path.join(self.work, "seattle_repy")
        make_install_dir(self.install_dir)
        return [f"--install.dir={self.install_dir}"]

    def config_updatesite(self):
        cfg = {"modules": {
            "updatesite": {"prober": "updatesite", "updatesite": {"trusted_key_file": self.update_key}},
            "updatesite_full": {"prober": "updatesite",
                                "updatesite": {"trusted_key_file": self.update_key, "full_check": True}},
            "http": {"prober": "http", "http": {"ca_file": self.tls_ca}},
            "cib": {"prober": "cib"},
            "cib_build": {"prober": "cib", "cib": {"build_round_trip": True}},
            "lockserver": {"prober": "lockserver"},
        }}
        return ["--config.file", self.write("updatesite.yml", cfg)]

    def config_install(self):
        self.install_dir = getattr(self, "install_dir", None) or os.path.join(self.work, "seattle_repy")
        make_install_dir(self.install_dir)
        mirror_update_site(self.ep["updatesite_url"], self.install_dir)
        return [f"--install.dir={self.install_dir}", f"--install.site-url={self.ep['updatesite_url']}",
                f"--install.trusted-key-file={self.update_key}"]

    def config_zenodotus(self):
        common = {"kind": "zenodotus", "server": self.ep["zenodotus_dns"], "advertise": self.ep["advertise_tcp"]}
        cfg = {"modules": {
            "zenodotus": dict(common),
            "zenodotus_zone": dict(common, check_host=False, compare_advertise=False, zone_check=True, round_trip=True),
        }}
        return ["--config.file", self.write("zenodotus.yml", cfg)]

    # -- Prometheus and Alertmanager -------------------------------------------------------------
    def targets_for(self, job):
        """The test's targets for every job of prometheus/prometheus.yml with static targets."""
        ep = self.ep
        return {
            "seattle_exporters": [EXPORTER[k].address for k in sorted(self.running) if EXPORTER[k].in_exporters_job],
            "seattle_process": [EXPORTER["process"].address],
            "seattle_advertise_tcp": [ep["advertise_tcp"]],
            "seattle_advertise_udp": [ep["advertise_udp"]],
            "seattle_users": [ep["advertise_tcp"]],
            "seattle_updatesite": [ep["updatesite_url"]],
            "seattle_updatesite_full": [ep["updatesite_url"]],
            "seattle_clearinghouse": [ep["clearinghouse_https_url"]],
            "seattle_cib": [ep["cib_xmlrpc_url"]],
            "seattle_cib_build": [ep["cib_xmlrpc_url"]],
            "seattle_lockserver": [ep["lockserver_url"]],
            "prometheus": [f"127.0.0.1:{self.prom_port}"],
        }.get(job)

    def exporter_of_job(self, job):
        for e in EXPORTERS:
            if job in e.jobs:
                return e
        return None

    def write_prometheus_config(self, am_port):
        cfg = yaml.safe_load(open(os.path.join(ROOT, "prometheus/prometheus.yml")))
        cfg["global"].update(scrape_interval=FAST, scrape_timeout=FAST, evaluation_interval=FAST)
        cfg["rule_files"] = [self.write_rules()]
        cfg["alerting"]["alertmanagers"] = [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
        kept = []
        for sc in cfg["scrape_configs"]:
            job = sc["job_name"]
            e = self.exporter_of_job(job)
            if e is not None and e.key not in self.running:
                log(f"prometheus: job {job} left out (exporter {e.key} missing)")
                continue
            iv = SLOW if job in SLOW_JOBS else FAST
            sc["scrape_interval"] = sc["scrape_timeout"] = iv
            for sd in sc.get("static_configs", []):
                targets = self.targets_for(job)
                if targets is None and job.startswith("seattle_zenodotus"):
                    targets = sd["targets"]  # DNS names the simulator's scenario announces
                if targets is None:
                    raise RuntimeError(f"prometheus.yml: job {job} has static targets this test does not know; teach targets_for()")
                sd["targets"] = targets
            for sd in sc.get("http_sd_configs", []):
                u = urllib.parse.urlsplit(sd["url"])
                owner = EXPORTER[COMPOSE_NAMES[u.hostname]]
                sd["url"] = u._replace(netloc=owner.address).geturl()
                sd["refresh_interval"] = "2s"
            for i, sd in enumerate(sc.get("file_sd_configs", [])):
                path = os.path.join(self.work, f"targets-{job}-{i}.yml")
                yaml.safe_dump([{"targets": [e.address]}], open(path, "w"))
                sd["files"] = [path]
            relabels = []
            for r in sc.get("relabel_configs", []):
                r = dict(r)  # YAML anchors share one list between jobs: copy before rewriting
                rep = r.get("replacement", "")
                host = rep.split(":")[0]
                if host in COMPOSE_NAMES:
                    r["replacement"] = EXPORTER[COMPOSE_NAMES[host]].address
                relabels.append(r)
            if relabels:
                sc["relabel_configs"] = relabels
            if "static_configs" in sc and not any(sd["targets"] for sd in sc["static_configs"]):
                log(f"prometheus: job {job} left out (no targets)")
                continue
            kept.append(sc)
        cfg["scrape_configs"] = kept
        return self.write("prometheus.yml", cfg)

    def write_rules(self):
        rules = yaml.safe_load(open(os.path.join(ROOT, "alerts/rules.yml")))
        self.alert_labels = {}
        for g in rules["groups"]:
            for r in g["rules"]:
                if "alert" in r:
                    r["for"] = ALERT_FOR
                    self.alert_labels[r["alert"]] = r.get("labels", {})
        return self.write("rules.yml", rules)

    def write_alertmanager_config(self, webhook_port, smtp_port):
        cfg = yaml.safe_load(open(os.path.join(ROOT, "alertmanager/alertmanager.yml")))
        cfg["global"]["smtp_smarthost"] = f"127.0.0.1:{smtp_port}"

        def timings(route):
            route["group_wait"] = "0s"
            route["group_interval"] = "1s"
            if "repeat_interval" in route:
                route["repeat_interval"] = "1h"
            for sub in route.get("routes", []):
                for k in ("group_wait", "group_interval"):
                    sub.pop(k, None)
                timings_sub(sub)

        def timings_sub(route):
            if "repeat_interval" in route:
                route["repeat_interval"] = "1h"
            for sub in route.get("routes", []):
                for k in ("group_wait", "group_interval"):
                    sub.pop(k, None)
                timings_sub(sub)

        timings(cfg["route"])
        email_to = {}
        self.irc_channels = {}  # "#channel" -> receiver posting to it through the relay
        for rcv in cfg["receivers"]:
            for w in rcv.get("webhook_configs", []):
                u = urllib.parse.urlsplit(w["url"])
                if u.hostname == "irc-relay" and self.relay_port:
                    # The relay's path is the channel without '#' (alertmanager/irc-relay.yml).
                    w["url"] = f"http://127.0.0.1:{self.relay_port}{u.path}"
                    self.irc_channels["#" + u.path.strip("/")] = rcv["name"]
                else:
                    w["url"] = f"http://127.0.0.1:{webhook_port}/{rcv['name']}"
            for m in rcv.get("email_configs", []):
                email_to[m["to"].lower()] = rcv["name"]
        return self.write("alertmanager.yml", cfg), email_to

    def start_monitoring(self):
        inbox = Inbox({})
        self.webhook = start_webhook(inbox)
        self.smtp, smtp_port = start_smtp(inbox)
        am_port = free_port()
        relay = shutil.which("alertmanager-irc-relay")
        self.relay_port = free_port() if relay else None
        am_cfg, email_to = self.write_alertmanager_config(self.webhook.server_address[1], smtp_port)
        inbox.email_to_receiver.update(email_to)
        self.inbox = inbox
        if relay:
            self.irc, joined = start_irc(inbox, self.irc_channels)
            rcfg = yaml.safe_load(open(os.path.join(ROOT, "alertmanager/irc-relay.yml")))
            rcfg.update(http_host="127.0.0.1", http_port=self.relay_port, irc_host="127.0.0.1",
                        irc_port=self.irc.server_address[1], irc_use_ssl=False)
            self.procs.start("irc-relay", [relay, "-config", self.write("irc-relay.yml", rcfg)])
        else:
            self.results.append(("SKIP", "IRC", "alertmanager-irc-relay is not installed: sysadmin-irc is "
                                 "checked at its webhook instead of through the relay to an IRC channel"))
        os.makedirs(os.path.join(self.work, "am-data"))
        self.procs.start("alertmanager", ["prometheus-alertmanager", f"--config.file={am_cfg}",
                                          f"--storage.path={self.work}/am-data",
                                          f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="])
        self.prom_port = getattr(self, "prom_port", None) or free_port()
        prom_cfg = self.write_prometheus_config(am_port)
        out = subprocess.run(["promtool", "check", "config", prom_cfg], capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"rewritten prometheus.yml does not check:\n{out.stdout}{out.stderr}")
        os.makedirs(os.path.join(self.work, "prom-data"))
        self.procs.start("prometheus", ["prometheus", f"--config.file={prom_cfg}",
                                        f"--storage.tsdb.path={self.work}/prom-data",
                                        f"--web.listen-address=127.0.0.1:{self.prom_port}"])
        self.prom = f"http://127.0.0.1:{self.prom_port}"
        wait_until("alertmanager ready", lambda: self.procs.check_alive({"alertmanager"}) or http_get(f"http://127.0.0.1:{am_port}/-/ready"), 30)
        wait_until("prometheus ready", lambda: self.procs.check_alive({"prometheus"}) or http_get(f"{self.prom}/-/ready"), 30)
        if relay:
            wait_until("IRC relay joined its channels", lambda: self.procs.check_alive({"irc-relay"}) or joined.is_set(), 30)
            log(f"IRC relay 127.0.0.1:{self.relay_port} joined {sorted(self.irc_channels)} on 127.0.0.1:{self.irc.server_address[1]}")
        log(f"prometheus {self.prom}, alertmanager 127.0.0.1:{am_port}, webhook 127.0.0.1:{self.webhook.server_address[1]}, smtp 127.0.0.1:{smtp_port}")

    def query(self, q):
        url = f"{self.prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            r = json.loads(http_get(url, timeout=10))
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"query {q!r}: {e.code} {e.read()[:300]!r}") from e
        return r["data"]["result"]

    def wait_scraped(self):
        """Waits until every target has been scraped at least once; reports the unhealthy ones."""
        def targets():
            return json.loads(http_get(f"{self.prom}/api/v1/targets?state=active"))["data"]["activeTargets"]

        def when(ok):
            ts = targets()
            return ts if ts and all(ok(t["health"]) for t in ts) else None

        wait_until("every target scraped once", lambda: when(lambda h: h != "unknown"), 60, 0.5)
        # A scrape can miss its 1 s deadline on a loaded machine: give every target a few chances to be up.
        try:
            ts = wait_until("every target up", lambda: when(lambda h: h == "up"), 20, 0.5)
        except TimeoutError:
            ts = targets()
        bad = [f"{t['labels']['job']} {t['labels'].get('instance')}: {t['lastError']}" for t in ts if t["health"] != "up"]
        log(f"prometheus: {len(ts)} targets scraped, {len(bad)} down")
        for b in bad:
            log(f"  down: {b}")
        return bad

    # -- faults ---------------------------------------------------------------------------------
    def expected_receivers(self, alert, labels):
        """Who should hear about an alert, from its audience (alerts/rules.yml's header): written out
        here rather than read from alertmanager.yml, so a routing mistake there fails this test."""
        lab = dict(self.alert_labels[alert], **labels)
        aud = lab["audience"]
        if aud == "sysadmin":
            return {"sysadmin-irc", "sysadmin-email"} if lab["severity"] == "critical" else {"sysadmin-email"}
        if aud == "node_owner":
            return {"node-owner-email", "experiment-manager-webhook"}
        if aud == "user":
            return {"user-alice-email"} if lab.get("user") == "alice" else {"users-webhook"}
        raise ValueError(f"{alert}: unknown audience {aud}")

    def wait_notifications(self, alert, labels, status, since, expected, timeout):
        got = {}
        deadline = time.time() + timeout
        while time.time() < deadline:
            for ev in self.inbox.snapshot():
                if ev["t"] >= since and ev["receiver"] not in got and notification_matches(ev, alert, labels, status):
                    got[ev["receiver"]] = (ev["t"] - since, ev["kind"])
            if expected <= set(got):
                break
            self.procs.check_alive({"prometheus", "alertmanager", "simulator", "irc-relay"})
            time.sleep(0.1)
        return got

    def run_fault(self, f):
        name = f["name"]
        missing = [k for k in f["needs"] if k not in self.running]
        if missing:
            msg = f"SKIP (exporter missing: {', '.join(missing)}): {f['alert']} not tested"
            log(f"{name}: {msg}")
            self.results.append(("SKIP", name, msg))
            return
        alert, labels = f["alert"], f["labels"]
        if alert not in self.alert_labels:
            self.results.append(("FAIL", name, f"{alert} is not in alerts/rules.yml any more: update this test"))
            return
        expected = self.expected_receivers(alert, labels)
        sel = ",".join([f'alertname="{alert}"'] + [f'{k}="{v}"' for k, v in labels.items()])
        log(f"fault '{name}': expecting {alert}{{{', '.join(f'{k}={v}' for k, v in labels.items())}}} at {sorted(expected)}")
        try:
            # The alert must be quiet before the fault, else its notification would prove nothing.
            wait_until(f"{name}: healthy before the fault ({f['healthy']}) and no {alert} pending or firing",
                       lambda: self.query(f["healthy"]) and not self.query(f"ALERTS{{{sel}}}"), 60, 0.5)
            t_fault = time.time()
            f["inject"]()
            got = self.wait_notifications(alert, labels, "firing", t_fault, expected, FAULT_TIMEOUT)
            t_clear = time.time()
            f["clear"]()
            resolved = self.wait_notifications(alert, labels, "resolved", t_clear, expected, FAULT_TIMEOUT)
        except Exception as e:  # noqa: BLE001 -- reported as this fault's failure; the others still run
            try:
                f["clear"]()
            except Exception:  # noqa: BLE001
                pass
            self.results.append(("FAIL", name, f"{type(e).__name__}: {e}"))
            log(f"FAIL {name}: {e}")
            return
        wrong = sorted({ev["receiver"] for ev in self.inbox.snapshot()
                        if ev["t"] >= t_fault and ev["receiver"] not in expected
                        and notification_matches(ev, alert, labels, "firing")})
        problems = []
        if expected - set(got):
            problems.append(f"no firing notification at {sorted(expected - set(got))} within {FAULT_TIMEOUT} s")
        if expected - set(resolved):
            problems.append(f"no resolved notification at {sorted(expected - set(resolved))} within {FAULT_TIMEOUT} s")
        if wrong:
            problems.append(f"also notified {wrong} (another audience's receivers)")
        times = ", ".join(f"{r} ({got[r][1]}) {got[r][0]:.1f} s" for r in sorted(got))
        rtimes = ", ".join(f"{r} ({resolved[r][1]}) {resolved[r][0]:.1f} s" for r in sorted(resolved))
        detail = f"{alert}: fault→firing {times or '-'}; cleared→resolved {rtimes or '-'}"
        status = "FAIL" if problems else "PASS"
        self.results.append((status, name, detail + ("; " + "; ".join(problems) if problems else "")))
        log(f"{status} {name}: {detail}" + ("; " + "; ".join(problems) if problems else ""))

    def faults(self):
        users = {u["name"]: u for u in self.truth["users"]}
        normal = {n["index"] for n in self.truth["nodes"] if n["behaviour"] == "normal"}

        def user_nodes(*names):
            return sorted({v["node"] for n in names for v in users[n]["vessels"]} & normal)

        def kill_critical():
            if self.critical_child is not None:
                Processes.stop_one(self.critical_child)

        disk = lambda: os.path.join(self.install_dir, "v2", "e2e-fill.bin")  # noqa: E731
        # A node nobody's vessels or names depend on, for the node owners' route.
        spare = max(normal - set(user_nodes(*users)) - {3})  # node 3 is web.zenodotus.poly.edu
        spare_addr = self.truth["nodes"][spare]["address"]

        def service_down(service, job, alert):
            return {"name": f"{service} down", "needs": ["updatesite"], "alert": alert, "labels": {"job": job},
                    "healthy": f'probe_success{{job="{job}"}} == 1',
                    "inject": lambda: self.sim("service", {"service": service, "behaviour": "down"}),
                    "clear": lambda: self.sim("service", {"service": service, "behaviour": "normal"})}

        return [
            {"name": "critical process group gone", "needs": ["process"],
             "alert": "SeattleCriticalProcessDown", "labels": {"group": "e2e_critical"},
             "healthy": 'seattle_process_group_in_range{group="e2e_critical"} == 1',
             "inject": kill_critical, "clear": self.start_critical_child},
            {"name": "advertise service down", "needs": ["node"],
             "alert": "SeattleAdvertiseServiceDown", "labels": {"job": "seattle_advertise_tcp"},
             "healthy": 'probe_success{job="seattle_advertise_tcp"} == 1',
             "inject": lambda: self.sim("service", {"service": "advertise_tcp", "behaviour": "down"}),
             "clear": lambda: self.sim("service", {"service": "advertise_tcp", "behaviour": "normal"})},
            {"name": "metainfo expired", "needs": ["updatesite"],
             "alert": "SeattleUpdateSiteMetainfoExpired", "labels": {"job": "seattle_updatesite"},
             "healthy": 'probe_success{job="seattle_updatesite"} == 1',
             "inject": lambda: self.sim("metainfo", {"state": "expired"}),
             "clear": lambda: self.sim("metainfo", {"state": "valid"})},
            service_down("updatesite", "seattle_updatesite", "SeattleUpdateSiteDown"),
            service_down("clearinghouse", "seattle_clearinghouse", "SeattleClearinghouseDown"),
            service_down("lockserver", "seattle_lockserver", "SeattleLockserverDown"),
            service_down("cib", "seattle_cib", "SeattleInstallerBuilderDown"),
            {"name": "Zenodotus DNS down", "needs": ["zenodotus"],
             "alert": "SeattleZenodotusDown", "labels": {"job": "seattle_zenodotus_zone"},
             "healthy": 'seattle_zenodotus_zone_soa_ok{job="seattle_zenodotus_zone"} == 1',
             "inject": lambda: self.sim("service", {"service": "zenodotus_dns", "behaviour": "down"}),
             "clear": lambda: self.sim("service", {"service": "zenodotus_dns", "behaviour": "normal"})},
            {"name": "node manager down (node owners)", "needs": ["node"],
             "alert": "SeattleNodeManagerDown", "labels": {"instance": spare_addr},
             "healthy": f'probe_success{{job="seattle_nodemanager", instance="{spare_addr}"}} == 1',
             "inject": lambda: self.sim("node", {"node": spare, "behaviour": "down"}),
             "clear": lambda: self.sim("node", {"node": spare, "behaviour": "normal"})},
            {"name": "vessel disk full", "needs": ["node_local"],
             "alert": "SeattleVesselNearDiskQuota", "labels": {"vessel": "v2"},
             "healthy": 'vessel:seattle_local_vessel_disk_used:ratio{vessel="v2"} < 0.9',
             "inject": lambda: fill_file(disk(), int(VESSEL_DISK_LIMIT * 0.97)),
             "clear": lambda: os.remove(disk())},
            {"name": "user's vessels gone (alice: her e-mail)", "needs": ["node"],
             "alert": "SeattleUserNoVessels", "labels": {"user": "alice"},
             "healthy": 'seattle_user_diagnosis{user="alice", reason="ok"} == 1',
             "inject": lambda: self.sim("node", {"nodes": user_nodes("alice"), "behaviour": "down", "withdraw": True}),
             "clear": lambda: self.sim("node", {"nodes": user_nodes("alice"), "behaviour": "normal"})},
            {"name": "user's vessels gone (dave: users webhook)", "needs": ["node"],
             "alert": "SeattleUserNoVessels", "labels": {"user": "dave"},
             "healthy": 'seattle_user_diagnosis{user="dave", reason="ok"} == 1',
             "inject": lambda: self.sim("node", {"nodes": user_nodes("dave"), "behaviour": "down", "withdraw": True}),
             "clear": lambda: self.sim("node", {"nodes": user_nodes("dave"), "behaviour": "normal"})},
        ]


VESSEL_DISK_LIMIT = 1_000_000


def fill_file(path, size):
    with open(path, "wb") as f:
        f.write(b"\0" * size)


def make_install_dir(d):
    """A node's seattle_repy directory (SEATTLE.md B.9): two vessels with a diskused quota, status
    files, and a little data in each vessel's directory."""
    if os.path.isdir(d):
        return
    os.makedirs(d)
    now = int(time.time())
    # vesseldict as persist.py writes it (repr of a dict; Python 3's repr of these types is Python 2's).
    vesseldict = {v: {"userkeys": [], "ownerkey": {"e": 65537, "n": 1000003 + i}, "oldmetadata": None,
                      "stopfilename": f"{v}.stop", "logfilename": f"{v}.log", "statusfilename": f"{v}.status",
                      "resourcefilename": f"resource.{v}", "advertise": True, "ownerinformation": "",
                      "status": "Fresh"} for i, v in enumerate(("v1", "v2"))}
    with open(os.path.join(d, "vesseldict"), "w") as f:
        f.write(repr(vesseldict))
    # nodeman.cfg's shape (a dict); a real one holds the node's private key, this one a placeholder.
    with open(os.path.join(d, "nodeman.cfg"), "w") as f:
        f.write(repr({"ports": [1224], "version": "0.1t", "publickey": {"e": 65537, "n": 1000033},
                      "privatekey": {"d": 1, "p": 2, "q": 3}}))
    for v in ("v1", "v2"):
        os.makedirs(os.path.join(d, v))
        with open(os.path.join(d, f"resource.{v}"), "w") as f:
            f.write(f"resource cpu .10\nresource memory 10000000\nresource diskused {VESSEL_DISK_LIMIT}\n"
                    "resource events 10\nresource filewrite 10000\nresource fileread 10000\n")
        fill_file(os.path.join(d, v, "data.bin"), 10_000)
        open(os.path.join(d, f"{v}.status-Fresh-{now}"), "w").close()


def mirror_update_site(url, d):
    """What a node's software updater leaves behind: the site's metainfo and every file it lists
    (SEATTLE.md E.2, E.3), so the install is up to date."""
    base = url if url.endswith("/") else url + "/"
    meta = http_get(base + "metainfo")
    for line in meta.decode().splitlines():
        if not line.strip() or line.startswith(("#", "!")):
            continue
        path = line.split()[0]
        if path.startswith("/") or ".." in path.split("/"):
            raise ValueError(f"metainfo lists an unsafe path {path!r}")
        dest = os.path.join(d, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "wb") as f:
            f.write(http_get(base + urllib.parse.quote(path)))
    with open(os.path.join(d, "metainfo"), "wb") as f:
        f.write(meta)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bindir", required=True, help="where the cargo-built binaries are")
    ap.add_argument("--workdir", required=True, help="an empty temp directory")
    ap.add_argument("--pidfile", help="append every started pid here (for the caller's cleanup)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))

    stack = Stack(args)
    try:
        stack.start_simulator()
        stack.prom_port = free_port()
        stack.start_exporters()
        stack.start_monitoring()
        down = stack.wait_scraped()
        stack.results.append(("FAIL" if down else "PASS", "every target scraped",
                              f"{len(down)} targets down: {down}" if down else "all up"))
        import dashboards  # noqa: E402 -- tests/e2e/dashboards.py

        for f in stack.faults():
            stack.run_fault(f)
        for r in dashboards.check(stack):
            stack.results.append(r)
    except Exception as e:  # noqa: BLE001
        stack.results.append(("FAIL", "stack", f"{type(e).__name__}: {e}"))
        log(f"FAIL: {e}")
    finally:
        stack.procs.stop_all()
        try:
            stack.smtp.stop()
        except Exception:  # noqa: BLE001
            pass

    print()
    for status, name, detail in stack.results:
        print(f"{status:4} {name}: {detail}")
    n = {s: sum(1 for r in stack.results if r[0] == s) for s in ("PASS", "FAIL", "SKIP")}
    print(f"e2e: run took {time.time() - T0:.0f} s")
    print(f"e2e: {n['PASS']} passed, {n['FAIL']} failed, {n['SKIP']} skipped")
    return 1 if n["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
