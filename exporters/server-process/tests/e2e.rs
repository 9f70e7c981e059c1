//! End-to-end tests through the real binary: profiles against real child processes,
//! promtool lint, the real Prometheus over OpenMetrics (plain, and TLS + basic auth),
//! and `--config.check` on broken configs.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use seattle_exporter_toolkit::testing::{PrometheusServer, free_port, http_get, wait_until};

const BIN: &str = env!("CARGO_BIN_EXE_seattle_process_exporter");

const CLEARINGHOUSE_GROUPS: [&str; 9] = [
    "transition_donation_to_canonical",
    "transition_onepercentmanyevents_to_canonical",
    "transition_canonical_to_twopercent",
    "transition_twopercent_to_twopercent",
    "check_active_db_nodes",
    "backend_daemon",
    "lockserver_daemon",
    "apache2",
    "mysqld",
];

/// A running exporter, killed on drop.
struct Exporter {
    child: Child,
    addr: String,
}

impl Exporter {
    fn start(args: &[&str]) -> Exporter {
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new(BIN)
            .args(args)
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start exporter");
        let e = Exporter { child, addr };
        wait_until(Duration::from_secs(20), "exporter listening", || {
            std::net::TcpStream::connect(&e.addr).ok()
        })
        .unwrap();
        e
    }

    /// Text-format scrape (no OpenMetrics in Accept).
    fn scrape_text(&self) -> String {
        let r = http_get(&self.addr, "/metrics", &[]).unwrap();
        assert_eq!(r.status, 200);
        r.text()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Value of the sample with exactly this name and label text, e.g. `x{group="a"}`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

fn group_value(text: &str, metric: &str, group: &str) -> f64 {
    sample(text, &format!("{metric}{{group=\"{group}\"}}"))
        .unwrap_or_else(|| panic!("no {metric} for {group} in\n{text}"))
}

/// A child process killed (and reaped) on drop, so a failing assertion leaks nothing.
struct Daemon(Child);

impl Daemon {
    fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Waits until the child's command line (after `exec`) names `script`: `spawn`
    /// returning does not mean the new command line is readable yet.
    fn started(self, script: &str) -> Daemon {
        let path = format!("/proc/{}/cmdline", self.pid());
        wait_until(Duration::from_secs(30), "child exec'd", || {
            let cmd = std::fs::read(&path).ok()?;
            String::from_utf8_lossy(&cmd).contains(script).then_some(())
        })
        .unwrap();
        self
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A long sleep whose command line looks like the clearinghouse's `python …/<script>`.
fn fake_daemon(script: &str) -> Daemon {
    let child = Command::new("sleep")
        .arg0(format!("/usr/bin/python /home/ch/deploy/{script}"))
        .arg("600")
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn sleep");
    Daemon(child).started(script)
}

/// The python form the clearinghouse really runs (script path as an argument).
fn fake_python_daemon(script: &str) -> Daemon {
    let child = Command::new("/usr/bin/python3")
        .args(["-c", "import time; time.sleep(600)"])
        .arg(format!("/home/ch/deploy/{script}"))
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn python3");
    Daemon(child).started(script)
}

/// Processes already on this machine (not this test's) whose command line or comm
/// contains a clearinghouse group name: a plain substring scan of /proc, independent
/// of the exporter's matcher.
fn clearinghouse_lookalikes() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let read = |f: &str| {
            std::fs::read(entry.path().join(f))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default()
        };
        let (cmd, comm) = (read("cmdline"), read("comm"));
        if CLEARINGHOUSE_GROUPS
            .iter()
            .any(|g| cmd.contains(g) || comm.contains(g))
        {
            found.push(format!("{pid}: {}", cmd.trim_end()));
        }
    }
    found
}

#[test]
fn clearinghouse_profile_follows_real_processes() {
    let lookalikes = clearinghouse_lookalikes();
    // On a clean machine (as in CI) every group starts at exactly 0; where such
    // processes already run, only this test's own effect (+1, then back) is checked.
    let clean = lookalikes.is_empty();
    if !clean {
        eprintln!(
            "WARNING: this machine already runs {} clearinghouse-like processes; \
             asserting deltas instead of absolute zeros:\n  {}",
            lookalikes.len(),
            lookalikes.join("\n  ")
        );
    }
    let e = Exporter::start(&["--profile", "clearinghouse"]);
    let t = e.scrape_text();
    let processes = |t: &str, g: &str| group_value(t, "seattle_process_group_processes", g);
    let restarts = |t: &str, g: &str| group_value(t, "seattle_process_group_restarts_total", g);
    for g in CLEARINGHOUSE_GROUPS {
        if clean {
            assert_eq!(processes(&t, g), 0.0, "{g}");
            assert_eq!(
                group_value(&t, "seattle_process_group_in_range", g),
                0.0,
                "{g}"
            );
        }
        assert_eq!(
            group_value(&t, "seattle_process_group_expected_min_processes", g),
            1.0
        );
    }
    assert_eq!(
        t.matches("seattle_process_group_processes{").count(),
        9,
        "{t}"
    );
    assert!(
        sample(
            &t,
            "seattle_process_group_listening{group=\"backend_daemon\",address=\"127.0.0.1:8020\"}"
        )
        .is_some()
    );
    let base = t;

    let backend = fake_daemon("backend/backend_daemon.py");
    let lockserver = fake_python_daemon("lockserver/lockserver_daemon.py");
    let t = e.scrape_text();
    for g in ["backend_daemon", "lockserver_daemon"] {
        assert_eq!(processes(&t, g), processes(&base, g) + 1.0, "{g}");
        assert!(group_value(&t, "seattle_process_group_resident_memory_bytes", g) > 0.0);
        assert!(group_value(&t, "seattle_process_group_open_fds", g) >= 1.0);
        assert!(group_value(&t, "seattle_process_group_oldest_start_time_seconds", g) > 1.6e9);
        assert_eq!(restarts(&t, g), restarts(&base, g), "{g}");
        if clean {
            assert_eq!(
                group_value(&t, "seattle_process_group_in_range", g),
                1.0,
                "{g}"
            );
        }
    }
    assert_eq!(
        processes(&t, "check_active_db_nodes"),
        processes(&base, "check_active_db_nodes")
    );

    drop(backend);
    drop(lockserver);
    let t = e.scrape_text();
    for g in ["backend_daemon", "lockserver_daemon"] {
        assert_eq!(processes(&t, g), processes(&base, g), "{g}");
        if clean {
            assert_eq!(
                group_value(&t, "seattle_process_group_in_range", g),
                0.0,
                "{g}"
            );
            assert_eq!(
                group_value(&t, "seattle_process_group_oldest_start_time_seconds", g),
                0.0
            );
        }
    }

    // Back from 0: a restart (only when the group really was empty in between).
    let before = t;
    let _backend = fake_daemon("backend/backend_daemon.py");
    let t = e.scrape_text();
    assert_eq!(
        processes(&t, "backend_daemon"),
        processes(&before, "backend_daemon") + 1.0
    );
    let came_back = processes(&before, "backend_daemon") == 0.0;
    assert_eq!(
        restarts(&t, "backend_daemon"),
        restarts(&before, "backend_daemon") + f64::from(u8::from(came_back))
    );
    if clean {
        assert_eq!(restarts(&t, "backend_daemon"), 1.0);
    }
    assert_eq!(
        restarts(&t, "lockserver_daemon"),
        restarts(&before, "lockserver_daemon")
    );
}

#[test]
fn promtool_finds_nothing_in_the_text_format() {
    let e = Exporter::start(&["--profile", "clearinghouse", "--profile", "node"]);
    let text = e.scrape_text();
    assert!(text.contains("seattle_filesystem_"), "{text}");
    assert!(text.contains("seattle_scrape_collector_success"), "{text}");
    let mut p = Command::new("/usr/bin/promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    p.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = p.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{said}\n{text}"
    );
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("spe-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Self-signed certificate for 127.0.0.1 (cert, key), made with the openssl CLI.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    (cert, key)
}

fn curl_status(url: &str, ca: &Path, user: Option<&str>) -> String {
    let mut c = Command::new("curl");
    c.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(ca)
        .arg(url);
    if let Some(u) = user {
        c.args(["-u", u]);
    }
    String::from_utf8(c.output().expect("curl").stdout).unwrap()
}

#[test]
fn real_prometheus_scrapes_plain_and_tls_with_basic_auth() {
    let dir = temp_dir("tls");
    let (cert, key) = self_signed(&dir);
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  prom: '{hash}'\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let plain = Exporter::start(&["--profile", "clearinghouse"]);
    let secured = Exporter::start(&[
        "--profile",
        "node",
        "--web.config.file",
        web.to_str().unwrap(),
    ]);
    let url = format!("https://{}/metrics", secured.addr);
    assert_eq!(curl_status(&url, &cert, None), "401");
    assert_eq!(curl_status(&url, &cert, Some("prom:wrong")), "401");
    assert_eq!(curl_status(&url, &cert, Some("nobody:s3cret")), "401");
    assert_eq!(curl_status(&url, &cert, Some("prom:s3cret")), "200");

    let scrape_configs = format!(
        "- job_name: plain\n  static_configs:\n    - targets: ['{}']\n\
         - job_name: secured\n  scheme: https\n  tls_config:\n    ca_file: {}\n  basic_auth:\n    username: prom\n    password: s3cret\n  static_configs:\n    - targets: ['{}']\n",
        plain.addr,
        cert.display(),
        secured.addr
    );
    let mut prom = PrometheusServer::start(&scrape_configs, &[]).unwrap();
    prom.wait_ready(Duration::from_secs(20)).unwrap();
    let result = wait_until(Duration::from_secs(40), "both jobs scraped", || {
        let targets = prom.targets().ok()?;
        let up = targets.iter().filter(|t| t.health == "up").count();
        (up == 2).then_some(targets)
    });
    if let Err(e) = result {
        panic!("{e}: {:?}\n{}", prom.targets(), prom.log());
    }
    for t in prom.targets().unwrap() {
        assert_eq!(t.last_error, "", "{t:?}");
    }
    let groups = prom
        .query("seattle_process_group_processes{job=\"plain\"}")
        .unwrap();
    let mut names: Vec<String> = groups.iter().map(|(l, _)| l["group"].clone()).collect();
    names.sort();
    let mut want: Vec<String> = CLEARINGHOUSE_GROUPS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(names, want);
    // Values are not asserted: another test here starts fake clearinghouse daemons.
    assert!(groups.iter().all(|(_, v)| v.is_finite()));
    let node = prom
        .query("seattle_process_group_expected_min_processes{job=\"secured\"}")
        .unwrap();
    let mut node_groups: Vec<&str> = node.iter().map(|(l, _)| l["group"].as_str()).collect();
    node_groups.sort();
    assert_eq!(node_groups, vec!["nmmain", "softwareupdater"]);
    let ok = prom.query("min(seattle_scrape_collector_success)").unwrap();
    assert_eq!(ok[0].1, 1.0);
    drop(prom);
    let _ = std::fs::remove_dir_all(dir);
}

fn config_check(dir: &Path, name: &str, yaml: &str) -> (bool, String) {
    let f = dir.join(name);
    std::fs::write(&f, yaml).unwrap();
    let out = Command::new(BIN)
        .arg("--config.file")
        .arg(&f)
        .arg("--config.check")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn config_check_rejects_broken_configs_naming_file_line_and_field() {
    let dir = temp_dir("cfg");
    let good = "process_groups:\n  - name: backend\n    match:\n      cmdline: 'backend_daemon\\.py'\n    min: 1\n    max: 1\n    listen: ['127.0.0.1:8020']\nfilesystems:\n  expected_mountpoints: [/]\n";
    let (ok, said) = config_check(&dir, "good.yml", good);
    assert!(ok, "{said}");

    let cases = [
        (
            "unknown-key.yml",
            "process_groups:\n  - name: backend\n    match: {comm: [x]}\n    mni: 1\n",
            ":4",
            "mni",
        ),
        (
            "wrong-type.yml",
            "process_groups:\n  - name: backend\n    match: {comm: [x]}\n    min: lots\n",
            ":4",
            "min",
        ),
        (
            "bad-regex.yml",
            "process_groups:\n  - name: backend\n    match:\n      cmdline: 'backend_(daemon'\n",
            ":4",
            "process_groups[0].match.cmdline",
        ),
        (
            "min-over-max.yml",
            "process_groups:\n  - name: a\n    match: {comm: [a]}\n  - name: backend\n    match: {comm: [x]}\n    min: 3\n    max: 1\n",
            ":7",
            "process_groups[1].max",
        ),
    ];
    for (name, yaml, line, field) in cases {
        let (ok, said) = config_check(&dir, name, yaml);
        assert!(!ok, "{name} accepted: {said}");
        let file = dir.join(name).display().to_string();
        assert!(
            said.contains(&format!("{file}{line}")),
            "{name}: no file:line in {said:?}"
        );
        assert!(said.contains(field), "{name}: no field {field} in {said:?}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn unknown_profile_is_refused() {
    let out = Command::new(BIN)
        .args(["--profile", "nonesuch", "--config.check"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("clearinghouse"));
}
