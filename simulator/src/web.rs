//! HTTP services: the Custom Installer Builder (XML-RPC + HTML), the clearinghouse web site and
//! its lockserver (`GetStatus()` over XML-RPC).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use sha1::{Digest, Sha1};

use crate::scenario::Lock;
use crate::xmlrpc::{self, XVal};
use seattle_protocol::keys::PublicKey;

const VALIDATION: &str = "<class 'custominstallerbuilder.common.validations.ValidationError'>";
const PLATFORMS: [&str; 4] = ["windows", "mac", "android", "linux"];

pub fn xml(body: String) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/xml")
        .body(Body::from(body))
        .unwrap_or_default()
}

pub fn html(body: String) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Body::from(body))
        .unwrap_or_default()
}

pub struct Cib {
    pub base_url: Mutex<String>,
    builds: Mutex<HashSet<String>>,
    counter: AtomicU64,
    seed: u64,
}

impl Cib {
    pub fn new(seed: u64) -> Cib {
        Cib {
            base_url: Mutex::new(String::new()),
            builds: Mutex::new(HashSet::new()),
            counter: AtomicU64::new(0),
            seed,
        }
    }

    fn urls(&self, id: &str) -> XVal {
        let base = self
            .base_url
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        XVal::Struct(
            PLATFORMS
                .iter()
                .map(|p| {
                    (
                        p.to_string(),
                        XVal::Str(format!("{base}{id}/installers/{p}/")),
                    )
                })
                .collect(),
        )
    }

    /// Answers one XML-RPC request body.
    pub fn xmlrpc(&self, body: &Bytes) -> Response {
        let text = String::from_utf8_lossy(body);
        let Some((method, params)) = xmlrpc::parse_call(&text) else {
            return xml(xmlrpc::fault(
                1,
                "<class 'xml.parsers.expat.ExpatError'>:malformed request",
            ));
        };
        xml(match method.as_str() {
            "api_version" if params.is_empty() => xmlrpc::response(&XVal::Str("2.0".into())),
            "api_version" => xmlrpc::fault(
                1,
                &format!(
                    "<type 'exceptions.TypeError'>:api_version() takes no arguments ({} given)",
                    params.len()
                ),
            ),
            "build_installers" => self.build_installers(&params),
            "get_urls" => {
                let id = params.first().and_then(XVal::as_str).unwrap_or_default();
                let well_formed = id.len() == 40
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
                if !well_formed {
                    xmlrpc::fault(1, &format!("{VALIDATION}:Invalid build_id provided."))
                } else if !self
                    .builds
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .contains(id)
                {
                    xmlrpc::fault(1, &format!("{VALIDATION}:Given build ID does not exist."))
                } else {
                    xmlrpc::response(&self.urls(id))
                }
            }
            other => xmlrpc::fault(
                1,
                &format!("<type 'exceptions.Exception'>:method \"{other}\" is not supported"),
            ),
        })
    }

    fn build_installers(&self, params: &[XVal]) -> String {
        let fault = |m: &str| xmlrpc::fault(1, &format!("{VALIDATION}:{m}"));
        let Some(XVal::Array(vessels)) = params.first() else {
            return fault("Invalid vessel list.");
        };
        let mut total = 0;
        let mut names = Vec::new();
        for v in vessels {
            let Some(XVal::Int(p)) = v.get("percentage") else {
                return fault("Invalid percentage.");
            };
            if v.get("owner").and_then(XVal::as_str).is_none() {
                return fault("Vessel must have an owner.");
            }
            total += p;
            names.extend(v.get("owner").and_then(XVal::as_str).map(str::to_string));
            if let Some(XVal::Array(us)) = v.get("users") {
                names.extend(us.iter().filter_map(XVal::as_str).map(str::to_string));
            }
        }
        if total != 80 {
            return fault(&format!(
                "Vessel resources must total 80% exactly. Current vessels total {total}%."
            ));
        }
        let user_data = params.get(1);
        let mut users = Vec::new();
        let mut seen = HashSet::new();
        for name in names.into_iter().filter(|n| seen.insert(n.clone())) {
            let given = user_data
                .and_then(|d| d.get(&name))
                .and_then(|u| u.get("public_key"))
                .and_then(XVal::as_str);
            let entry = match given {
                Some(k) if PublicKey::parse(k).is_err() => {
                    return fault("Invalid public key provided.");
                }
                Some(k) => vec![("public_key".to_string(), XVal::Str(k.to_string()))],
                None => {
                    // The real builder generates a key pair; a fake public key is enough here.
                    let k = crate::keys::fake_key(crate::keys::sub_seed(
                        self.seed,
                        9,
                        self.counter.fetch_add(1, Ordering::Relaxed),
                    ));
                    vec![
                        ("public_key".to_string(), XVal::Str(k.to_key_string())),
                        ("private_key".to_string(), XVal::Str("(simulated)".into())),
                    ]
                }
            };
            users.push((name, XVal::Struct(entry)));
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = hex::encode(Sha1::digest(format!("{}-{n}", self.seed).as_bytes()));
        self.builds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone());
        xmlrpc::response(&XVal::Struct(vec![
            ("build_id".into(), XVal::Str(id.clone())),
            ("installers".into(), self.urls(&id)),
            ("users".into(), XVal::Struct(users)),
        ]))
    }

    pub fn page(&self) -> Response {
        html(
            "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
             <html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n\n<head>\n  \
             <meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\" />\n  \
             <title>Custom Installer Builder | Seattle</title>\n</head>\n<body>\n<h1>Custom Installer Builder</h1>\n\
             <p>Simulated by seattle_simulator.</p>\n</body>\n</html>\n"
                .into(),
        )
    }
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

pub struct Lockserver {
    /// (kind, name, taken at unix seconds)
    pub locks: Mutex<Vec<(String, String, f64)>>,
}

impl Lockserver {
    pub fn new(locks: &[Lock]) -> Lockserver {
        let now = now_unix();
        Lockserver {
            locks: Mutex::new(
                locks
                    .iter()
                    .map(|l| (l.kind.clone(), l.name.clone(), now - l.held_seconds))
                    .collect(),
            ),
        }
    }

    /// `GetStatus()`: `{'heldlockdict', 'sessiondict', 'locktimelist'}` (shape from
    /// `lockserver_daemon.py`; one simulated session holds every lock).
    pub fn xmlrpc(&self, body: &Bytes) -> Response {
        let text = String::from_utf8_lossy(body);
        let Some((method, _)) = xmlrpc::parse_call(&text) else {
            return xml(xmlrpc::fault(
                1,
                "<class 'xml.parsers.expat.ExpatError'>:malformed request",
            ));
        };
        if method != "GetStatus" {
            return xml(xmlrpc::fault(
                1,
                &format!("<type 'exceptions.Exception'>:method \"{method}\" is not supported"),
            ));
        }
        let locks = self.locks.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let session = "simulated-session-1".to_string();
        let held = |kind: &str| {
            XVal::Struct(
                locks
                    .iter()
                    .filter(|l| l.0 == kind)
                    .map(|l| {
                        (
                            l.1.clone(),
                            XVal::Struct(vec![
                                ("locked_by_session".into(), XVal::Str(session.clone())),
                                ("queue".into(), XVal::Array(Vec::new())),
                            ]),
                        )
                    })
                    .collect(),
            )
        };
        let names = |kind: &str| {
            XVal::Array(
                locks
                    .iter()
                    .filter(|l| l.0 == kind)
                    .map(|l| XVal::Str(l.1.clone()))
                    .collect(),
            )
        };
        let status = XVal::Struct(vec![
            (
                "heldlockdict".into(),
                XVal::Struct(vec![
                    ("node".into(), held("node")),
                    ("user".into(), held("user")),
                ]),
            ),
            (
                "sessiondict".into(),
                XVal::Struct(if locks.is_empty() {
                    Vec::new()
                } else {
                    vec![(
                        session.clone(),
                        XVal::Struct(vec![
                            (
                                "heldlocks".into(),
                                XVal::Struct(vec![
                                    ("node".into(), names("node")),
                                    ("user".into(), names("user")),
                                ]),
                            ),
                            (
                                "neededlocks".into(),
                                XVal::Struct(vec![
                                    ("node".into(), XVal::Array(Vec::new())),
                                    ("user".into(), XVal::Array(Vec::new())),
                                ]),
                            ),
                        ]),
                    )]
                }),
            ),
            (
                "locktimelist".into(),
                XVal::Array(
                    locks
                        .iter()
                        .map(|l| {
                            XVal::Array(vec![
                                XVal::Struct(vec![(l.0.clone(), XVal::Str(l.1.clone()))]),
                                XVal::Double(l.2),
                            ])
                        })
                        .collect(),
                ),
            ),
        ]);
        xml(xmlrpc::response(&status))
    }
}

pub fn clearinghouse_page() -> Response {
    html(
        "<!DOCTYPE html>\n<html>\n<head><title>Seattle Clearinghouse</title></head>\n<body>\n\
         <h1>Seattle Clearinghouse</h1>\n<p>Simulated by seattle_simulator.</p>\n</body>\n</html>\n"
            .into(),
    )
}

pub fn lan_sizes_page() -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(
            "Available LAN sizes by port\n\nPort\tSize List (top five)\n1100\t[1]\n",
        ))
        .unwrap_or_default()
}
