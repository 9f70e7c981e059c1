//! Module kind `advertise`: PUT a per-probe key, GET it back, then look up the well-known keys
//! on the same service (SEATTLE.md C.2, C.4, D.1). Also the single-service GET used by the
//! `users` module and discovery helpers.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{StreamExt, stream};
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, Prober};
use seattle_protocol::advertise::codec::{self, ReplyError, Request};
use seattle_protocol::advertise::{AdvertiseError, client};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::failure::advertise_failure;
use super::{
    Labels, Protocol, Shared, float_family, gauge, gauge_family, resolve_target, step_deadline,
};

/// TTL of the probe key: long enough to GET it back, short enough not to litter the server.
pub const DEFAULT_TTL_SECONDS: u64 = 60;
/// Cap on lookup replies (a v2 lookup of ~50,000 nodes is ~1.5 MB).
pub const DEFAULT_LOOKUP_MAX_REPLY: usize = 8 << 20;
/// Cap on the replies to the probe's own PUT and GET (one value expected).
const PROBE_MAX_REPLY: usize = 64 << 10;
/// `maxvals` of lookups (what the clearinghouse asks; servers may ignore it).
pub const LOOKUP_MAXVALS: u64 = 10_485_760;
/// Well-known lookups running at once (`advertise_lookup`'s `concurrentevents`).
const LOOKUP_CONCURRENCY: usize = 4;
/// UDP: waits before each retry (the stock client's 1, 2, 4, 8 s), cut at the deadline.
const UDP_WAITS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// One UDP datagram is all a reply may be.
const MAX_DATAGRAM: usize = 64 << 10;

/// Settings of an `advertise` module.
#[derive(Debug, Clone)]
pub struct AdvertiseModule {
    pub protocol: Protocol,
    pub ttl_seconds: u64,
    /// Look up the well-known keys too.
    pub lookups: bool,
    /// Cap on a lookup reply.
    pub max_reply_bytes: usize,
}

pub struct AdvertiseProber {
    shared: Arc<Shared>,
}

impl AdvertiseProber {
    pub fn new(shared: Arc<Shared>) -> Self {
        AdvertiseProber { shared }
    }
}

impl Prober for AdvertiseProber {
    type Module = AdvertiseModule;

    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a AdvertiseModule,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
        Box::pin(probe(&self.shared, target, module, ctx, registry))
    }
}

/// Why a UDP exchange found no reply: `wrong_source` when only foreign datagrams arrived.
#[derive(Debug)]
enum UdpOutcome<T> {
    Reply(Result<T, AdvertiseError>),
    OnlyForeign,
}

/// One request over a connected UDP socket (the kernel drops datagrams from other addresses and
/// reports ICMP port unreachable as `ECONNREFUSED`); retries like the stock client.
async fn udp_exchange<T>(
    server: SocketAddr,
    request: &Request,
    deadline: Instant,
    decode: impl Fn(&[u8], u64) -> Result<T, ReplyError>,
) -> UdpOutcome<T> {
    let local: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(s) => s,
        Err(e) => return UdpOutcome::Reply(Err(AdvertiseError::Io(e))),
    };
    if let Err(e) = socket.connect(server).await {
        return UdpOutcome::Reply(Err(AdvertiseError::Io(e)));
    }
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut foreign = false;
    for wait in UDP_WAITS {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let attempt_deadline = (now + wait).min(deadline);
        let id = u64::from(rand::random::<u32>());
        let datagram = codec::encode_udp_request(request, id);
        match tokio::time::timeout_at(attempt_deadline, socket.send(&datagram)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return UdpOutcome::Reply(Err(AdvertiseError::Io(e))),
            Err(_) => continue,
        }
        // Bounded by the attempt deadline however many datagrams arrive.
        while let Ok(received) =
            tokio::time::timeout_at(attempt_deadline, socket.recv(&mut buf)).await
        {
            let n = match received {
                Ok(n) => n,
                Err(e) => return UdpOutcome::Reply(Err(AdvertiseError::Io(e))),
            };
            match decode(&buf[..n], id) {
                Err(ReplyError::WrongId) => foreign = true,
                other => return UdpOutcome::Reply(other.map_err(AdvertiseError::Reply)),
            }
        }
    }
    if foreign {
        UdpOutcome::OnlyForeign
    } else {
        UdpOutcome::Reply(Err(AdvertiseError::NoReply))
    }
}

fn udp_failure<T>(o: UdpOutcome<T>) -> Result<T, ProbeFailure> {
    match o {
        UdpOutcome::Reply(r) => r.map_err(|e| advertise_failure(&e)),
        UdpOutcome::OnlyForeign => Err(ProbeFailure::new(
            "wrong_source",
            "only replies for another request id arrived",
        )),
    }
}

/// GET `key` on one service; errors carry the catalogue reason.
pub async fn get(
    protocol: Protocol,
    server: SocketAddr,
    key: &[u8],
    maxvals: u64,
    max_reply: usize,
    deadline: Instant,
) -> Result<Vec<Vec<u8>>, ProbeFailure> {
    match protocol {
        Protocol::Tcp => client::tcp_get(server, key, maxvals, max_reply, deadline)
            .await
            .map_err(|e| advertise_failure(&e)),
        Protocol::Udp => {
            let request = Request::Get {
                key: key.to_vec(),
                maxvals,
            };
            udp_failure(udp_exchange(server, &request, deadline, codec::decode_udp_get_reply).await)
        }
    }
}

async fn put(
    protocol: Protocol,
    server: SocketAddr,
    key: &[u8],
    value: &[u8],
    ttl: u64,
    deadline: Instant,
) -> Result<(), ProbeFailure> {
    match protocol {
        Protocol::Tcp => client::tcp_put(server, key, value, ttl, deadline)
            .await
            .map_err(|e| advertise_failure(&e)),
        Protocol::Udp => {
            let request = Request::Put {
                key: key.to_vec(),
                value: value.to_vec(),
                ttl,
            };
            udp_failure(udp_exchange(server, &request, deadline, codec::decode_udp_put_reply).await)
        }
    }
}

/// Distinct non-empty values.
pub fn distinct_values(values: &[Vec<u8>]) -> usize {
    values
        .iter()
        .filter(|v| !v.is_empty())
        .collect::<HashSet<_>>()
        .len()
}

fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

async fn probe(
    shared: &Shared,
    target: &str,
    module: &AdvertiseModule,
    ctx: &ProbeContext,
    registry: &mut Registry,
) -> Result<(), ProbeFailure> {
    let deadline = step_deadline(ctx);
    let server = resolve_target(target, deadline).await?;
    let key = format!("seattle-exporter-probe-{}", random_hex());
    let value = random_hex();

    let put_get = async {
        let start = Instant::now();
        let put = put(
            module.protocol,
            server,
            key.as_bytes(),
            value.as_bytes(),
            module.ttl_seconds,
            deadline,
        )
        .await;
        let put_secs = start.elapsed().as_secs_f64();
        if let Err(e) = put {
            return (put_secs, None, Err(e));
        }
        let start = Instant::now();
        let got = get(
            module.protocol,
            server,
            key.as_bytes(),
            codec::DEFAULT_MAXVALS,
            PROBE_MAX_REPLY,
            deadline,
        )
        .await;
        (put_secs, Some(start.elapsed().as_secs_f64()), got)
    };
    let lookups = async {
        if !module.lookups {
            return Vec::new();
        }
        // Futures built eagerly: a closure inside the stream trips the Send check (rust#64552).
        let futures: Vec<_> = shared
            .lookups
            .iter()
            .map(|l| async move {
                let start = Instant::now();
                let r = get(
                    module.protocol,
                    server,
                    &l.key,
                    LOOKUP_MAXVALS,
                    module.max_reply_bytes,
                    deadline,
                )
                .await;
                (l.name.as_str(), start.elapsed().as_secs_f64(), r)
            })
            .collect();
        stream::iter(futures)
            .buffered(LOOKUP_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
    };
    let ((put_secs, get_secs, got), lookups) = tokio::join!(put_get, lookups);

    let mut steps: Vec<(Labels, f64)> = vec![(vec![("step", "put".into())], put_secs)];
    if let Some(s) = get_secs {
        steps.push((vec![("step", "get".into())], s));
    }
    float_family(
        registry,
        "seattle_advertise_step_duration_seconds",
        "Time of the probe step (request to reply)",
        steps,
    );
    let mut success = Vec::new();
    let mut counts = Vec::new();
    let mut durations = Vec::new();
    for (name, secs, r) in &lookups {
        let label = || vec![("lookup", name.to_string())];
        success.push((label(), i64::from(r.is_ok())));
        durations.push((label(), *secs));
        match r {
            Ok(values) => counts.push((label(), distinct_values(values) as i64)),
            Err(f) => ctx.log(format_args!("lookup {name} failed: {f}")),
        }
    }
    if module.lookups {
        gauge_family(
            registry,
            "seattle_advertise_lookup_success",
            "1 if the lookup of the well-known key answered",
            success,
        );
        gauge_family(
            registry,
            "seattle_advertise_lookup_values",
            "Distinct non-empty values the lookup returned",
            counts,
        );
        float_family(
            registry,
            "seattle_advertise_lookup_duration_seconds",
            "Time of the lookup",
            durations,
        );
    }

    let values = got?;
    let matched = values.iter().any(|v| v == value.as_bytes());
    gauge(
        registry,
        "seattle_advertise_put_get_match",
        "1 if the GET listed the value just PUT",
        i64::from(matched),
    );
    if matched {
        Ok(())
    } else {
        Err(ProbeFailure::new(
            "value_mismatch",
            format!("GET answered {} values without the PUT value", values.len()),
        ))
    }
}
