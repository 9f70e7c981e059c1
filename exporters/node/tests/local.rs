//! Node-local mode against an install directory built by the test: vesseldict, status files of
//! several ages and statuses, resource files, vessel directories with files of known sizes.
//! The metrics must say what was written; malformed files fail their collector with an error
//! that names the file; huge directories give a bounded, flagged result.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::collector::Collector;
use seattle_exporter_toolkit::testing::{free_port, http_get, wait_until};
use seattle_node_exporter::local::disk::{self, DiskCollector};
use seattle_node_exporter::local::processes::ProcessesCollector;
use seattle_node_exporter::local::vessels::{self, VesselsCollector};
use seattle_node_exporter::local::{install, pyliteral};

/// The scrape time for `scrape_at`; in the past, so under the real clock every `Started`
/// written here is stale.
const NOW: f64 = 1_700_000_000.0;

/// A temporary `seattle_repy` directory, removed on drop.
struct InstallDir(PathBuf);

impl InstallDir {
    fn new(name: &str) -> InstallDir {
        let dir = std::env::temp_dir().join(format!("node-local-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        InstallDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, content: impl AsRef<[u8]>) {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn status(&self, vessel: &str, status: &str, at: f64) {
        self.write(&format!("{vessel}.status-{status}-{at}"), "");
    }
}

impl Drop for InstallDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn vessel_entry(name: &str, status: &str) -> String {
    format!(
        "'{name}': {{'userkeys': [{{'e': 65537L, 'n': 1234567890123456789012345678901234567890L}}], \
         'ownerkey': {{'e': 65537L, 'n': 98765432109876543210L}}, 'oldmetadata': None, \
         'stopfilename': '{name}.stop', 'logfilename': '{name}.log', \
         'statusfilename': '{name}.status', 'resourcefilename': 'resource.{name}', \
         'advertise': True, 'ownerinformation': '', 'status': '{status}'}}"
    )
}

fn resource_file(diskused: &str) -> String {
    format!(
        "# a vessel's resources\nresource cpu 0.10\nresource memory 100000000\n\
         resource diskused {diskused}\nresource events 10\nresource messport 63100\n\
         resource connport 63100\ncall gethostbyname_ex allow\n"
    )
}

/// A node as nmmain leaves it, with vessels v1 … v8 in every state.
fn populated(name: &str) -> InstallDir {
    let d = InstallDir::new(name);
    d.write(
        "nodeman.cfg",
        "{'ports': [1224, 2888, 9625], 'version': '0.2-beta', \
         'publickey': {'e': 65537L, 'n': 123L}, 'privatekey': {'d': 1L, 'e': 65537L, 'n': 123L, 'p': 3L, 'q': 41L}}",
    );
    let entries: Vec<String> = [
        ("v1", "Started"),
        ("v2", "Started"),
        ("v3", "Stopped"),
        ("v4", "Started"),
        ("v5", "Started"),
        ("v7", "Fresh"),
        ("v8", "Started"),
        ("v1234567", "Started"),
    ]
    .iter()
    .map(|(n, s)| vessel_entry(n, s))
    .collect();
    d.write(
        "vesseldict",
        format!("{{{}, 'servicevessel': {{}}}}", entries.join(", ")),
    );
    // Newest file per vessel wins; a fresh Started is started, an old one stale.
    d.status("v1", "Stopped", NOW - 50.0);
    d.status("v1", "Started", NOW - 3.5);
    d.status("v1", "Started", NOW - 100.0);
    d.status("v2", "Started", NOW - 60.0);
    d.status("v3", "Fresh", NOW - 1000.0);
    d.status("v3", "Stopped", NOW - 10.0);
    d.status("v4", "ThreadErr", NOW - 5.0);
    d.status("v5", "Started", NOW - 2.0);
    d.status("v5", "Terminated", NOW - 1.0);
    d.status("v8", "Exploded", NOW - 1.0);
    d.status("v99", "Started", NOW); // not in vesseldict
    d.write("v1.log.old", "x".repeat(5000));

    d.write("resource.v1", resource_file("1000000"));
    d.write("resource.v2", resource_file("100000.0"));
    d.write("resource.v3", resource_file("10000"));
    d.write("resource.v4", resource_file("5000"));
    d.write("resources.offcut", resource_file("99"));
    d.write("v1/a.txt", vec![b'a'; 1234]);
    d.write("v1/b.bin", vec![0u8; 4096]);
    d.write("v1/empty", "");
    d.write("v2/sub/deeper/c", vec![1u8; 777]);
    d.write("v2/d", vec![1u8; 23]);
    // v3 at 95 % of its quota.
    d.write("v3/big", vec![7u8; 9000]);
    d.write("v3/small", vec![7u8; 500]);
    std::os::unix::fs::symlink("/etc/passwd", d.path().join("v3/link")).unwrap();
    // v4 has no directory yet.
    d
}

fn text_of(c: &dyn Collector) -> anyhow::Result<String> {
    let mut r = Registry::default();
    c.collect(&mut r)?;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
    Ok(text)
}

/// Value of the sample with exactly this name and labels.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.strip_prefix(' ')?.trim().parse().ok()
    })
}

#[test]
fn vessel_statuses_are_the_newest_files() {
    let d = populated("status");
    let got = VesselsCollector::new(d.path()).scrape_at(NOW).unwrap();
    let want: Vec<(String, &str)> = [
        ("v1", "started"),
        ("v2", "stale"),
        ("v3", "stopped"),
        ("v4", "thread_err"),
        ("v5", "terminated"),
        ("v7", "fresh"),
        ("v8", "other"),
    ]
    .iter()
    .map(|(v, s)| (v.to_string(), *s))
    .collect();
    assert_eq!(got, want);

    let mut r = Registry::default();
    vessels::encode(&got, &mut r);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
    assert_eq!(
        sample(
            &text,
            "seattle_local_vessel_status{vessel=\"v2\",status=\"stale\"}"
        ),
        Some(1.0)
    );
    assert_eq!(text.matches("seattle_local_vessel_status{").count(), 7);

    // Under the real clock every Started written here is stale.
    let text = text_of(&VesselsCollector::new(d.path())).unwrap();
    assert_eq!(
        sample(
            &text,
            "seattle_local_vessel_status{vessel=\"v1\",status=\"stale\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn vessel_disk_used_and_limits_are_what_was_written() {
    let d = populated("disk");
    let c = DiskCollector::new(d.path());
    let s = c.scrape().unwrap();
    let got: Vec<(&str, u64, bool, Option<f64>)> = s
        .vessels
        .iter()
        .map(|v| {
            (
                v.vessel.as_str(),
                v.used.bytes,
                v.used.capped,
                v.limit_bytes,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("v1", 1234 + 4096, false, Some(1_000_000.0)),
            ("v2", 777 + 23, false, Some(100_000.0)),
            ("v3", 9500, false, Some(10_000.0)),
            ("v4", 0, false, Some(5000.0)),
        ]
    );
    let real = seattle_host::collector::filesystem::statvfs(d.path()).unwrap();
    assert_eq!(s.filesystem_size_bytes, real.size_bytes);
    assert!(s.filesystem_size_bytes > 0);
    assert!(s.filesystem_avail_bytes <= s.filesystem_size_bytes);

    let text = text_of(&c).unwrap();
    for (series, value) in [
        (
            "seattle_local_vessel_disk_used_bytes{vessel=\"v3\"}",
            9500.0,
        ),
        (
            "seattle_local_vessel_disk_limit_bytes{vessel=\"v3\"}",
            10000.0,
        ),
        ("seattle_local_vessel_disk_walk_capped{vessel=\"v3\"}", 0.0),
        ("seattle_local_vessel_disk_used_bytes{vessel=\"v4\"}", 0.0),
        (
            "seattle_local_vessel_disk_limit_bytes{vessel=\"v2\"}",
            100000.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }
    let used = sample(&text, "seattle_local_vessel_disk_used_bytes{vessel=\"v3\"}").unwrap();
    let limit = sample(
        &text,
        "seattle_local_vessel_disk_limit_bytes{vessel=\"v3\"}",
    )
    .unwrap();
    assert!(used / limit > 0.9, "v3 is over 90 % of its quota");
    assert!(sample(&text, "seattle_local_filesystem_size_bytes").is_some_and(|v| v > 0.0));
    assert!(sample(&text, "seattle_local_filesystem_avail_bytes").is_some());
    assert!(!text.contains("offcut"));
}

#[test]
fn malformed_vesseldict_and_nodeman_cfg_fail_the_vessel_collector_naming_the_file() {
    let d = populated("badvd");
    for (content, expect) in [
        (&b"{'v1': {'status': 'Started'"[..], "byte 27"),
        (b"{'v1': __import__('os')}", "byte 7"),
        (b"['v1', 'v2']", "not a dict"),
        (b"{'v1': 'Started'}", "not a dict"),
        (b"\xff\xfe{", "byte 0"),
    ] {
        d.write("vesseldict", content);
        let e = text_of(&VesselsCollector::new(d.path())).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("vesseldict") && msg.contains(expect), "{msg}");
    }
    d.write("vesseldict", "[".repeat(1_000_000));
    let e = VesselsCollector::new(d.path()).scrape_at(NOW).unwrap_err();
    assert!(format!("{e:#}").contains("nested too deeply"), "{e:#}");

    d.write("vesseldict", "{}");
    assert_eq!(VesselsCollector::new(d.path()).scrape_at(NOW).unwrap(), []);
    std::fs::remove_file(d.path().join("nodeman.cfg")).unwrap();
    let e = VesselsCollector::new(d.path()).scrape_at(NOW).unwrap_err();
    assert!(format!("{e:#}").contains("nodeman.cfg"), "{e:#}");
    d.write("nodeman.cfg", "{'ports': [1224,");
    let e = VesselsCollector::new(d.path()).scrape_at(NOW).unwrap_err();
    assert!(
        format!("{e:#}").contains("nodeman.cfg does not parse"),
        "{e:#}"
    );

    // Files over the cap are refused, not read whole.
    let big = d.path().join("big");
    std::fs::write(&big, [b'x'; 11]).unwrap();
    assert!(install::read_capped(&big, 10).is_err());
    assert_eq!(install::read_capped(&big, 11).unwrap().len(), 11);
    // The disk collector does not depend on vesseldict.
    d.write("vesseldict", "{'v1': ");
    assert!(DiskCollector::new(d.path()).scrape().is_ok());
}

#[test]
fn malformed_resource_file_fails_the_disk_collector_naming_it() {
    let d = populated("badres");
    for content in [
        "resource diskused lots\n",
        "resource diskused\n",
        "allow everything\n",
        "resource diskused 1\nresource diskused 2\n",
    ] {
        d.write("resource.v2", content);
        let e = text_of(&DiskCollector::new(d.path())).unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("resource.v2") && msg.contains("line"), "{msg}");
    }
    d.write("resource.v2", vec![b'#'; 100_000]);
    let e = DiskCollector::new(d.path()).scrape().unwrap_err();
    assert!(format!("{e:#}").contains("larger than"), "{e:#}");
    // A resource file without diskused has no limit series, and that is not an error.
    d.write("resource.v2", "resource cpu 0.1\n");
    let s = DiskCollector::new(d.path()).scrape().unwrap();
    assert_eq!(s.vessels[1].limit_bytes, None);
}

#[test]
fn huge_vessel_directory_gives_a_capped_lower_bound() {
    let d = populated("huge");
    for i in 0..300 {
        d.write(&format!("v1/f{i}"), "x");
    }
    // A deep chain of directories is walked without recursion.
    let mut deep = String::from("v2");
    for _ in 0..200 {
        deep.push_str("/n");
    }
    d.write(&format!("{deep}/leaf"), "yy");
    let s = DiskCollector::with_entry_cap(d.path(), 100)
        .scrape()
        .unwrap();
    let v1 = &s.vessels[0];
    assert_eq!(v1.vessel, "v1");
    assert!(v1.used.capped);
    assert_eq!(v1.used.entries, 100);
    assert!(v1.used.bytes <= 1234 + 4096 + 300);
    let v2 = &s.vessels[1];
    assert!(v2.used.capped, "201 entries in v2 exceed the cap of 100");
    assert!(!s.vessels[2].used.capped);

    let w = disk::walk(&d.path().join("v2"), 10_000).unwrap();
    assert_eq!((w.bytes, w.capped), (777 + 23 + 2, false));
    let mut r = Registry::default();
    disk::encode(&s, &mut r);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
    assert_eq!(
        sample(
            &text,
            "seattle_local_vessel_disk_walk_capped{vessel=\"v1\"}"
        ),
        Some(1.0)
    );
}

#[test]
fn many_vessels_are_bounded() {
    let d = InstallDir::new("many");
    for n in 0..100 {
        d.write(&format!("resource.v{n}"), resource_file("10"));
    }
    d.write("resource.vbogus", resource_file("10"));
    d.write("resource.v12345678", "not even parsed");
    let s = DiskCollector::new(d.path()).scrape().unwrap();
    assert_eq!(s.vessels.len(), install::MAX_VESSELS);
    assert_eq!(s.vessels[0].vessel, "v0");
    assert_eq!(s.vessels[63].vessel, "v63");
}

#[test]
fn python_literals_from_a_real_repr() {
    // persist.py output of Python 2: longs, unicode strings, None, nested keys.
    let v = pyliteral::parse(
        br#"{u'v10': {'userkeys': [], 'oldmetadata': 'sig\n\'quoted\'', 'status': u'Fresh'}}"#,
    )
    .unwrap();
    let v10 = v.get("v10").unwrap();
    assert_eq!(v10.get("status").and_then(|s| s.as_str()), Some("Fresh"));
    assert_eq!(
        v10.get("oldmetadata").and_then(|s| s.as_str()),
        Some("sig\n'quoted'")
    );
}

#[test]
fn process_running_flips_with_a_child_running_nmmain() {
    let c = ProcessesCollector::new().unwrap();
    let running = |c: &ProcessesCollector| -> bool {
        c.scrape()
            .unwrap()
            .iter()
            .find(|(p, _)| *p == "nmmain.py")
            .unwrap()
            .1
    };
    assert!(
        !running(&c),
        "a node manager already runs on this machine; this test needs none"
    );
    // argv[0] with spaces: the command line reads like the real `python …/nmmain.py`.
    let mut child = Command::new("sleep")
        .arg0("python /home/seattle/seattle_repy/nmmain.py")
        .arg("60")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // spawn() returns once exec has begun, when the child's command line can still be empty for
    // a moment (the collector classifies it again on a later scrape): poll, as Prometheus would.
    let up = wait_until(Duration::from_secs(5), "nmmain.py seen running", || {
        running(&c).then_some(())
    });
    let text = text_of(&c);
    child.kill().unwrap();
    child.wait().unwrap();
    up.unwrap();
    let text = text.unwrap();
    assert_eq!(
        sample(
            &text,
            "seattle_local_process_running{process=\"nmmain.py\"}"
        ),
        Some(1.0)
    );
    assert!(
        sample(
            &text,
            "seattle_local_process_running{process=\"softwareupdater.py\"}"
        )
        .is_some()
    );
    assert!(!running(&c));
}

const BIN: &str = env!("CARGO_BIN_EXE_seattle_node_exporter");

#[test]
fn the_binary_serves_node_local_metrics_with_install_dir() {
    let d = populated("bin");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(BIN)
        .arg(format!("--install.dir={}", d.path().display()))
        .arg(format!("--web.listen-address={addr}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let text = wait_until(Duration::from_secs(20), "node-local metrics", || {
        let r = http_get(&addr, "/metrics", &[]).ok()?;
        (r.status == 200).then(|| r.text())
    });
    let _ = child.kill();
    let _ = child.wait();
    let text = text.unwrap();
    for (series, value) in [
        (
            "seattle_scrape_collector_success{collector=\"local_vessels\"}",
            1.0,
        ),
        (
            "seattle_scrape_collector_success{collector=\"local_disk\"}",
            1.0,
        ),
        (
            "seattle_scrape_collector_success{collector=\"local_processes\"}",
            1.0,
        ),
        // Time-independent statuses: stopped, and a Started far in the past is stale.
        (
            "seattle_local_vessel_status{vessel=\"v3\",status=\"stopped\"}",
            1.0,
        ),
        (
            "seattle_local_vessel_status{vessel=\"v2\",status=\"stale\"}",
            1.0,
        ),
        (
            "seattle_local_vessel_disk_used_bytes{vessel=\"v3\"}",
            9500.0,
        ),
        (
            "seattle_local_vessel_disk_limit_bytes{vessel=\"v3\"}",
            10000.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
    }

    let missing = d.path().join("no-such-dir");
    let status = Command::new(BIN)
        .arg(format!("--install.dir={}", missing.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success());
}
