//! The `advertise_lookup` combiner (SEATTLE.md C.5) and Affix id resolution (D.2).
//!
//! All services are queried in parallel; the result is the union of the successful services'
//! lists in service order, first occurrence kept, empty strings dropped. Once one service has
//! succeeded the others get a grace period; failures contribute nothing; the lookup fails only
//! if every service failed.

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::node_address::{AffixReachability, NodeAddress, affix_reachability};
use super::{AdvertiseError, client, codec, udp};
use crate::framing::DEFAULT_MAX_PAYLOAD;

/// One advertise service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Service {
    /// A TCP server (`central`, `central_v2`), `host:port`.
    Tcp {
        /// Name for reports and metrics labels (e.g. `central`).
        name: String,
        /// `host:port`.
        addr: String,
    },
    /// The UDP server, `host:port`.
    Udp {
        /// Name for reports and metrics labels (e.g. `udp`).
        name: String,
        /// `host:port`.
        addr: String,
    },
}

impl Service {
    /// The service's name.
    pub fn name(&self) -> &str {
        match self {
            Service::Tcp { name, .. } | Service::Udp { name, .. } => name,
        }
    }
}

/// Lookup parameters.
#[derive(Debug, Clone)]
pub struct LookupOptions {
    /// `maxvals` sent to every service.
    pub maxvals: u64,
    /// How long to keep waiting for the others after the first success (stock: 5 s).
    pub grace: Duration,
    /// Nothing runs past this.
    pub deadline: Instant,
    /// Cap on one TCP reply.
    pub max_reply: usize,
    /// UDP retry waits (stock: 1, 2, 4, 8 s).
    pub udp_waits: Vec<Duration>,
}

impl LookupOptions {
    /// Stock parameters with the given deadline.
    pub fn until(deadline: Instant) -> LookupOptions {
        LookupOptions {
            maxvals: codec::DEFAULT_MAXVALS,
            grace: Duration::from_secs(5),
            deadline,
            max_reply: DEFAULT_MAX_PAYLOAD,
            udp_waits: udp::RETRY_WAITS.to_vec(),
        }
    }
}

/// Outcome of a combined lookup.
#[derive(Debug)]
pub struct Lookup {
    /// The merged values.
    pub values: Vec<Vec<u8>>,
    /// Each service's own result (its value count, or why it failed), in service order.
    pub services: Vec<(String, Result<usize, AdvertiseError>)>,
}

impl Lookup {
    /// Whether at least one service answered.
    pub fn succeeded(&self) -> bool {
        self.services.iter().any(|(_, r)| r.is_ok())
    }

    /// The merged values, or an error when no service answered.
    pub fn into_result(self) -> Result<Vec<Vec<u8>>, AdvertiseError> {
        if self.services.is_empty() {
            Err(AdvertiseError::NoServices)
        } else if self.succeeded() {
            Ok(self.values)
        } else {
            Err(AdvertiseError::AllFailed)
        }
    }
}

async fn query(
    service: &Service,
    key: &[u8],
    opts: &LookupOptions,
) -> Result<Vec<Vec<u8>>, AdvertiseError> {
    match service {
        Service::Tcp { addr, .. } => {
            client::tcp_get(
                addr.as_str(),
                key,
                opts.maxvals,
                opts.max_reply,
                opts.deadline,
            )
            .await
        }
        Service::Udp { addr, .. } => {
            udp::udp_get_with_waits(
                addr.as_str(),
                key,
                opts.maxvals,
                opts.deadline,
                &opts.udp_waits,
            )
            .await
        }
    }
}

/// Merges per-service lists like `advertise_lookup`: concatenation in service order,
/// first occurrence kept, empty strings dropped.
pub fn merge_values<'a>(lists: impl IntoIterator<Item = &'a [Vec<u8>]>) -> Vec<Vec<u8>> {
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut out = Vec::new();
    for list in lists {
        for v in list {
            if !v.is_empty() && seen.insert(v.as_slice()) {
                out.push(v.clone());
            }
        }
    }
    out
}

/// Looks `key` up on every service in parallel and merges the answers.
pub async fn lookup(services: &[Service], key: &[u8], opts: &LookupOptions) -> Lookup {
    let mut pending: FuturesUnordered<_> = services
        .iter()
        .enumerate()
        .map(|(i, s)| async move { (i, query(s, key, opts).await) })
        .collect();
    let mut results: Vec<Option<Result<Vec<Vec<u8>>, AdvertiseError>>> =
        services.iter().map(|_| None).collect();
    let mut grace_end: Option<Instant> = None;
    loop {
        let next = match grace_end {
            Some(end) => match tokio::time::timeout_at(end, pending.next()).await {
                Ok(n) => n,
                Err(_) => break,
            },
            // Every query is bounded by the deadline, so this ends too.
            None => pending.next().await,
        };
        let Some((i, result)) = next else { break };
        if result.is_ok() && grace_end.is_none() {
            grace_end = Some((Instant::now() + opts.grace).min(opts.deadline));
        }
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(result);
        }
    }
    let results: Vec<Result<Vec<Vec<u8>>, AdvertiseError>> = results
        .into_iter()
        .map(|r| r.unwrap_or(Err(AdvertiseError::Abandoned)))
        .collect();
    let values = merge_values(
        results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(Vec::as_slice)),
    );
    let services = services
        .iter()
        .zip(results)
        .map(|(s, r)| (s.name().to_string(), r.map(|v| v.len())))
        .collect();
    Lookup { values, services }
}

/// What the advertise services say about an Affix node.
#[derive(Debug)]
pub struct AffixResolution {
    /// Values under `<id>`: the node's current IP(s).
    pub ips: Vec<Vec<u8>>,
    /// Values under `<id>,<port>,TCP`: Affix stack strings.
    pub stacks: Vec<Vec<u8>>,
    /// NAT if any stack has a TCP relay, direct if stacks exist without one, unknown otherwise.
    pub reachability: Option<AffixReachability>,
}

/// Resolves an Affix node string (`<sha1>:port`) with the two lookups `<id>` and
/// `<id>,<port>,TCP`, run in parallel. `None` if `node` is not an Affix node string.
pub async fn resolve_affix(
    services: &[Service],
    node: &NodeAddress,
    opts: &LookupOptions,
) -> Option<Result<AffixResolution, AdvertiseError>> {
    let ip_key = node.affix_ip_key()?;
    let stack_key = node.affix_stack_key()?;
    let (ips, stacks) = tokio::join!(
        lookup(services, ip_key.as_bytes(), opts),
        lookup(services, stack_key.as_bytes(), opts)
    );
    let result = (|| {
        let ips = ips.into_result()?;
        let stacks = stacks.into_result()?;
        let reachability = if stacks.is_empty() {
            None
        } else if stacks
            .iter()
            .any(|s| affix_reachability(s) == AffixReachability::Nat)
        {
            Some(AffixReachability::Nat)
        } else {
            Some(AffixReachability::Direct)
        };
        Ok(AffixResolution {
            ips,
            stacks,
            reachability,
        })
    })();
    Some(result)
}
