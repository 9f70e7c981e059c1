//! Module kind `lockserver`: the clearinghouse lockserver's XML-RPC `GetStatus()` (SEATTLE.md H.1),
//! which returns `{'heldlockdict', 'sessiondict', 'locktimelist'}`.
//!
//! - locks held: members of `heldlockdict['node']` and `heldlockdict['user']` (a lock name → its
//!   holder and queue);
//! - sessions: members of `sessiondict`;
//! - oldest lock age: `locktimelist` is a list of `({kind: name}, time_taken)` pairs, `time_taken`
//!   being the lockserver's `time.time()` when the lock was granted; the age is our clock minus
//!   the smallest `time_taken` (the lockserver runs on 127.0.0.1 of the clearinghouse host, so the
//!   two clocks are the same clock), clamped at 0, and 0 when the list is empty.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure};

use super::updatesite::unix_now;
use crate::config::Module;
use crate::http_client::HttpMetrics;
use crate::xmlrpc::{Reply, Value, call};

type F64Gauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Default)]
pub struct LockserverProber;

/// What `GetStatus()` says.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    pub node_locks: usize,
    pub user_locks: usize,
    pub sessions: usize,
    /// `time_taken` of the longest-held lock.
    pub oldest_taken: Option<f64>,
}

fn members(v: &Value) -> Option<usize> {
    match v {
        Value::Struct(m) => Some(m.len()),
        _ => None,
    }
}

/// Reads a `GetStatus()` value; `None` when it does not have the expected shape.
pub fn parse_status(v: &Value) -> Option<Status> {
    let held = v.get("heldlockdict")?;
    // A kind with no lock may be missing from the dict.
    let count = |kind: &str| match held.get(kind) {
        None => Some(0),
        Some(d) => members(d),
    };
    let node_locks = count("node")?;
    let user_locks = count("user")?;
    let sessions = members(v.get("sessiondict")?)?;
    let Value::Array(times) = v.get("locktimelist")? else {
        return None;
    };
    let mut oldest: Option<f64> = None;
    for entry in times {
        // xmlrpclib sends the (lockdict, time) tuple as a two-item array.
        let Value::Array(pair) = entry else {
            return None;
        };
        let t = pair.get(1)?.as_f64()?;
        oldest = Some(oldest.map_or(t, |o| o.min(t)));
    }
    Some(Status {
        node_locks,
        user_locks,
        sessions,
        oldest_taken: oldest,
    })
}

impl LockserverProber {
    pub async fn probe(
        &self,
        target: &str,
        module: &Module,
        ctx: &ProbeContext,
        registry: &mut Registry,
        metrics: &HttpMetrics,
    ) -> Result<(), ProbeFailure> {
        let reply = call(
            &module.http,
            target,
            "GetStatus",
            &[],
            ctx.deadline(),
            Some(metrics),
        )
        .await;
        metrics.finish(registry);
        let value = match reply? {
            Reply::Fault { code, message } => {
                return Err(ProbeFailure::new(
                    "xmlrpc_fault",
                    format!("GetStatus fault {code}: {message}"),
                ));
            }
            Reply::Value(v) => v,
        };
        let status = parse_status(&value).ok_or_else(|| {
            ProbeFailure::new("bad_reply", "GetStatus did not return the expected dict")
        })?;
        let held = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        held.get_or_create(&[("kind", "node")])
            .set(status.node_locks as i64);
        held.get_or_create(&[("kind", "user")])
            .set(status.user_locks as i64);
        registry.register("seattle_lockserver_locks_held", "Locks held now", held);
        let sessions = Gauge::<i64>::default();
        sessions.set(status.sessions as i64);
        registry.register("seattle_lockserver_sessions", "Sessions open", sessions);
        let age = F64Gauge::default();
        age.set(
            status
                .oldest_taken
                .map_or(0.0, |t| (unix_now() - t).max(0.0)),
        );
        registry.register(
            "seattle_lockserver_oldest_lock_age_seconds",
            "Age of the longest-held lock (0 when none)",
            age,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shape() {
        let v = Value::Struct(vec![
            (
                "heldlockdict".into(),
                Value::Struct(vec![
                    (
                        "node".into(),
                        Value::Struct(vec![("n1".into(), Value::Nil), ("n2".into(), Value::Nil)]),
                    ),
                    ("user".into(), Value::Struct(vec![])),
                ]),
            ),
            (
                "sessiondict".into(),
                Value::Struct(vec![("s".into(), Value::Nil)]),
            ),
            (
                "locktimelist".into(),
                Value::Array(vec![
                    Value::Array(vec![Value::Nil, Value::Double(200.5)]),
                    Value::Array(vec![Value::Nil, Value::Int(100)]),
                ]),
            ),
        ]);
        assert_eq!(
            parse_status(&v),
            Some(Status {
                node_locks: 2,
                user_locks: 0,
                sessions: 1,
                oldest_taken: Some(100.0)
            })
        );
        assert_eq!(parse_status(&Value::Str("x".into())), None);
    }
}
