//! What the host collectors watch: process groups and their matchers, filesystem
//! expectations, and the built-in process-group profiles of Seattle's machines.

use std::net::SocketAddr;
use std::time::Duration;

use regex::Regex;

/// One group of processes, ready to match.
#[derive(Debug, Clone)]
pub struct ProcessGroup {
    pub name: String,
    pub matcher: Matcher,
    pub min: u64,
    pub max: Option<u64>,
    pub listen: Vec<SocketAddr>,
}

/// What a process must have to belong to a group; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// Any of these `comm` values (the kernel's 15-byte command name).
    pub comm: Vec<String>,
    /// Any of these paths, as the executable or as argv[0].
    pub exe: Vec<String>,
    /// Regex over the command line, arguments joined by single spaces.
    pub cmdline: Option<Regex>,
    pub uid: Option<u32>,
}

impl Matcher {
    /// Whether matching needs the command line (argv) of a process.
    pub fn needs_cmdline(&self) -> bool {
        self.cmdline.is_some() || !self.exe.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct FilesystemConfig {
    pub expected_mountpoints: Vec<String>,
    pub stat_timeout: Duration,
}

impl Default for FilesystemConfig {
    fn default() -> Self {
        FilesystemConfig {
            expected_mountpoints: Vec::new(),
            stat_timeout: Duration::from_secs(1),
        }
    }
}

/// Regex matching a script or program file name as a whole word of the command
/// line, possibly with a directory before it (as the old monitor's `ps` column test).
pub fn script(name: &str) -> Regex {
    let pattern = format!(r"(^|[\s/]){}(\s|$)", regex::escape(name));
    Regex::new(&pattern).unwrap_or_else(|_| unreachable!("escaped literal is a valid regex"))
}

fn group(name: &str, matcher: Matcher, listen: &[&str]) -> ProcessGroup {
    ProcessGroup {
        name: name.to_string(),
        matcher,
        min: 1,
        max: None,
        listen: listen
            .iter()
            .filter_map(|a| a.parse::<SocketAddr>().ok())
            .collect(),
    }
}

fn cmd(pattern: Regex) -> Matcher {
    Matcher {
        cmdline: Some(pattern),
        ..Matcher::default()
    }
}

pub const PROFILES: &[&str] = &[
    "advertise-server",
    "clearinghouse",
    "zenodotus",
    "node",
    "update-site",
];

/// The groups of a built-in profile, or None for an unknown name.
pub fn profile(name: &str) -> Option<Vec<ProcessGroup>> {
    let groups = match name {
        // Central (advertiseserver.py, or .mix under repy), v2 (repy V2) and UDP servers.
        "advertise-server" => vec![group(
            "advertiseserver",
            cmd(Regex::new(
                r"(^|[\s/])(advertiseserver\.py|advertiseserver\.mix|advertiseserver_v2\.r2py|udpadvertiseserver\.repy)(\s|$)",
            )
            .unwrap_or_else(|_| unreachable!("constant regex"))),
            &[],
        )],
        "clearinghouse" => {
            let mut g: Vec<ProcessGroup> = [
                "transition_donation_to_canonical",
                "transition_onepercentmanyevents_to_canonical",
                "transition_canonical_to_twopercent",
                "transition_twopercent_to_twopercent",
                "check_active_db_nodes",
            ]
            .iter()
            .map(|s| group(s, cmd(script(&format!("{s}.py"))), &[]))
            .collect();
            g.push(group(
                "backend_daemon",
                cmd(script("backend_daemon.py")),
                &["127.0.0.1:8020"],
            ));
            g.push(group(
                "lockserver_daemon",
                cmd(script("lockserver_daemon.py")),
                &["127.0.0.1:8010"],
            ));
            g.push(group(
                "apache2",
                Matcher {
                    comm: vec!["apache2".into()],
                    ..Matcher::default()
                },
                &["127.0.0.1:80", "127.0.0.1:443"],
            ));
            g.push(group(
                "mysqld",
                Matcher {
                    exe: vec!["/usr/sbin/mysqld".into()],
                    ..Matcher::default()
                },
                &["127.0.0.1:3306"],
            ));
            g
        }
        // Started as `python repy.py restrictions.test zenodotus_built.repy -p 53`.
        "zenodotus" => vec![group(
            "zenodotus",
            cmd(Regex::new(r"(^|[\s/])repy\.py\s.*(^|[\s/])zenodotus_built\.r?2?repy(\s|$)")
                .unwrap_or_else(|_| unreachable!("constant regex"))),
            &[],
        )],
        "node" => vec![
            group("nmmain", cmd(script("nmmain.py")), &[]),
            group("softwareupdater", cmd(script("softwareupdater.py")), &[]),
        ],
        "update-site" => vec![group(
            "webserver",
            Matcher {
                comm: vec!["apache2".into(), "nginx".into(), "httpd".into()],
                ..Matcher::default()
            },
            &[],
        )],
        _ => return None,
    };
    Some(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearinghouse_profile_has_nine_groups_matching_script_names() {
        let g = profile("clearinghouse").unwrap();
        assert_eq!(g.len(), 9);
        let backend = g.iter().find(|g| g.name == "backend_daemon").unwrap();
        let re = backend.matcher.cmdline.as_ref().unwrap();
        assert!(re.is_match("python /home/ch/backend/backend_daemon.py"));
        assert!(re.is_match("backend_daemon.py 60"));
        assert!(!re.is_match("vi backend_daemon.pyc"));
        assert!(!re.is_match("python old_backend_daemon.py"));
        for p in PROFILES {
            assert!(profile(p).is_some_and(|g| !g.is_empty()));
        }
        let z = &profile("zenodotus").unwrap()[0];
        assert!(
            z.matcher
                .cmdline
                .as_ref()
                .unwrap()
                .is_match("python repy.py restrictions.test zenodotus_built.repy -p 53")
        );
    }

    #[test]
    fn node_profile_matches_the_node_scripts() {
        let g = profile("node").unwrap();
        let names: Vec<&str> = g.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["nmmain", "softwareupdater"]);
        let nm = g[0].matcher.cmdline.as_ref().unwrap();
        assert!(nm.is_match("python nmmain.py"));
        assert!(
            nm.is_match("/usr/bin/python2 /home/u/seattle/seattle_repy/nmmain.py --foreground")
        );
        assert!(!nm.is_match("python nmmain.pyc"));
        assert!(!nm.is_match("python softwareupdater.py"));
        assert!(profile("no-such-profile").is_none());
    }
}
