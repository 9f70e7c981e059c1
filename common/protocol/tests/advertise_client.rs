//! Advertise clients (SEATTLE.md C.2, C.4, C.5, D.2) against tiny in-test servers that replay
//! golden replies or misbehave. Deadlines here are short so the hostile cases finish quickly;
//! no assertion depends on how long anything took.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use seattle_protocol::advertise::codec::{self, Request};
use seattle_protocol::advertise::lookup::{LookupOptions, Service, lookup, resolve_affix};
use seattle_protocol::advertise::node_address::{AffixReachability, NodeAddress};
use seattle_protocol::advertise::udp::{udp_get_with_waits, udp_put_with_waits};
use seattle_protocol::advertise::{AdvertiseError, tcp_get, tcp_put};
use seattle_protocol::framing::{DEFAULT_MAX_PAYLOAD, read_frame, write_frame};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;

fn soon(ms: u64) -> Instant {
    Instant::now() + Duration::from_millis(ms)
}

/// A generous deadline for cases that must succeed.
fn later() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Serves every connection with `respond(raw bytes read so far)`: it gets the request payload
/// (already unframed) and returns the raw bytes to write, or None to hang up silently.
async fn tcp_server<F>(respond: F) -> SocketAddr
where
    F: Fn(Vec<u8>) -> Option<Vec<u8>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let Ok(request) = read_frame(&mut stream, DEFAULT_MAX_PAYLOAD).await else {
                    return;
                };
                if let Some(raw) = respond(request) {
                    let _ = stream.write_all(&raw).await;
                }
            });
        }
    });
    addr
}

/// A fake advertise server holding `table`, answering like the real one.
async fn table_server(table: HashMap<Vec<u8>, Vec<Vec<u8>>>) -> SocketAddr {
    tcp_server(move |request| {
        let reply = match codec::decode_request(&request).ok()? {
            Request::Get { key, .. } => {
                codec::encode_get_reply(table.get(&key).map(Vec::as_slice).unwrap_or(&[]))
            }
            Request::Put { .. } => codec::encode_put_reply(),
        };
        Some(seattle_protocol::framing::encode_frame(&reply))
    })
    .await
}

/// A server that accepts and then never says anything (the Python server on a bad request).
async fn silent_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

#[tokio::test]
async fn tcp_get_replays_golden_exchange() {
    // advertise_v2r2py_session_tcp.jsonl, conn 20.
    let addr = tcp_server(|request| {
        assert_eq!(request, b"T4:SGET11:Sgolden-key4:I1000:");
        Some(b"48\nT3:SOK37:L14:S10.0.0.1:122414:S10.0.0.2:28880:0:".to_vec())
    })
    .await;
    let values = tcp_get(addr, b"golden-key", 100, DEFAULT_MAX_PAYLOAD, later())
        .await
        .unwrap();
    assert_eq!(
        values,
        vec![b"10.0.0.1:1224".to_vec(), b"10.0.0.2:2888".to_vec()]
    );
}

#[tokio::test]
async fn tcp_put_replays_golden_exchange() {
    // conn 17.
    let addr = tcp_server(|request| {
        assert_eq!(request, b"T4:SPUT11:Sgolden-key14:S10.0.0.1:12244:I6000:");
        Some(b"3\nSOK".to_vec())
    })
    .await;
    tcp_put(addr, b"golden-key", b"10.0.0.1:1224", 600, later())
        .await
        .unwrap();
}

async fn get_error(addr: SocketAddr, deadline: Instant) -> AdvertiseError {
    tcp_get(addr, b"k", 100, DEFAULT_MAX_PAYLOAD, deadline)
        .await
        .unwrap_err()
}

#[tokio::test]
async fn tcp_hostile_servers() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"".to_vec(), "connection_closed"),
        (b"9999999999999999999\n".to_vec(), "too_large"),
        (b"hello world, this is not a frame\n".to_vec(), "framing"),
        (b"5\nZjunk".to_vec(), "bad_reply"),
        (b"48\nT3:SOK".to_vec(), "connection_closed"),
        (b"13\nT3:SNO3:L0:0:".to_vec(), "bad_reply"),
        (b"3\nSOK".to_vec(), "bad_reply"),
        (b"-1\n".to_vec(), "connection_closed"),
    ];
    for (raw, reason) in cases {
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let addr = tcp_server(move |_| Some(raw.clone())).await;
        let err = get_error(addr, later()).await;
        assert_eq!(err.reason(), reason, "{shown:?}: {err}");
    }
}

#[tokio::test]
async fn tcp_reply_cap_applies() {
    let addr = table_server(HashMap::from([(b"k".to_vec(), vec![vec![b'x'; 1000]])])).await;
    let err = tcp_get(addr, b"k", 100, 100, later()).await.unwrap_err();
    assert_eq!(err.reason(), "too_large");
    let ok = tcp_get(addr, b"k", 100, 2000, later()).await.unwrap();
    assert_eq!(ok.len(), 1);
}

#[tokio::test]
async fn tcp_deadline_honoured_when_server_never_answers() {
    let addr = silent_server().await;
    let err = get_error(addr, soon(200)).await;
    assert!(matches!(err, AdvertiseError::Timeout), "{err:?}");
}

#[tokio::test]
async fn tcp_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = get_error(addr, later()).await;
    assert_eq!(err.reason(), "connection_refused", "{err:?}");
}

/// A UDP server answering from its own socket; before the real reply it sends a reply with a
/// wrong id, and another from a different socket, both of which the client must skip.
async fn udp_server(values: Vec<Vec<u8>>, noise: bool) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let other = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok((request, id)) = codec::decode_udp_request(&buf[..n]) else {
                continue;
            };
            let reply = |id: &seattle_protocol::serialize::Value| match &request {
                Request::Get { .. } => codec::encode_udp_get_reply(&values, id),
                Request::Put { .. } => codec::encode_udp_put_reply(id),
            };
            if noise {
                // Replies the client must ignore: a forged list (or an error status) under a
                // wrong id from the server, and under the right id from another port.
                use seattle_protocol::serialize::{Value, encode};
                let forged = |id: &Value| match &request {
                    Request::Get { .. } => codec::encode_udp_get_reply(&[b"forged:1"], id),
                    Request::Put { .. } => {
                        encode(&Value::Tuple(vec![Value::str("NO"), id.clone()]))
                    }
                };
                let wrong = Value::int(id.as_i64().unwrap_or(0) + 1);
                let _ = socket.send_to(&forged(&wrong), from).await;
                let _ = other.send_to(&forged(&id), from).await;
            }
            let _ = socket.send_to(&reply(&id), from).await;
        }
    });
    addr
}

const SHORT_WAITS: [Duration; 3] = [
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(200),
];

#[tokio::test]
async fn udp_get_and_put_skip_foreign_datagrams() {
    let values = vec![b"10.1.1.1:1224".to_vec(), b"10.1.1.2:1224".to_vec()];
    let addr = udp_server(values.clone(), true).await;
    let waits = [Duration::from_secs(5)];
    let got = udp_get_with_waits(addr, b"udp-golden-key", 100, later(), &waits)
        .await
        .unwrap();
    assert_eq!(got, values);
    udp_put_with_waits(addr, b"k", b"v", 600, later(), &waits)
        .await
        .unwrap();
}

#[tokio::test]
async fn udp_silent_server_gives_up() {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let err = udp_get_with_waits(addr, b"k", 100, later(), &SHORT_WAITS)
        .await
        .unwrap_err();
    assert!(matches!(err, AdvertiseError::NoReply), "{err:?}");
    assert_eq!(err.reason(), "timeout");
    // The overall deadline cuts the retries short too.
    let err = udp_get_with_waits(addr, b"k", 100, soon(20), &[Duration::from_secs(60)])
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "timeout");
    drop(socket);
}

fn opts() -> LookupOptions {
    LookupOptions {
        grace: Duration::from_millis(200),
        udp_waits: SHORT_WAITS.to_vec(),
        ..LookupOptions::until(later())
    }
}

#[tokio::test]
async fn lookup_merges_like_advertise_lookup() {
    let central = table_server(HashMap::from([(
        b"key".to_vec(),
        vec![
            b"a:1".to_vec(),
            b"b:2".to_vec(),
            b"".to_vec(),
            b"a:1".to_vec(),
        ],
    )]))
    .await;
    let broken = tcp_server(|_| None).await;
    let udp = udp_server(vec![b"b:2".to_vec(), b"c:3".to_vec()], false).await;
    let services = vec![
        Service::Tcp {
            name: "central".into(),
            addr: central.to_string(),
        },
        Service::Tcp {
            name: "central_v2".into(),
            addr: broken.to_string(),
        },
        Service::Udp {
            name: "udp".into(),
            addr: udp.to_string(),
        },
    ];
    // Every service answers promptly: generous waits keep a loaded machine from flaking.
    let patient = LookupOptions {
        grace: Duration::from_secs(10),
        udp_waits: vec![Duration::from_secs(10)],
        ..LookupOptions::until(later())
    };
    let result = lookup(&services, b"key", &patient).await;
    assert_eq!(
        result.values,
        vec![b"a:1".to_vec(), b"b:2".to_vec(), b"c:3".to_vec()]
    );
    let per_service: Vec<(&str, Result<usize, &str>)> = result
        .services
        .iter()
        .map(|(n, r)| (n.as_str(), r.as_ref().map(|c| *c).map_err(|e| e.reason())))
        .collect();
    assert_eq!(
        per_service,
        vec![
            ("central", Ok(4)),
            ("central_v2", Err("connection_closed")),
            ("udp", Ok(2)),
        ]
    );
    assert!(result.into_result().is_ok());
}

#[tokio::test]
async fn lookup_grace_period_abandons_slow_services() {
    let central = table_server(HashMap::from([(b"key".to_vec(), vec![b"a:1".to_vec()])])).await;
    let silent = silent_server().await;
    let services = vec![
        Service::Tcp {
            name: "silent".into(),
            addr: silent.to_string(),
        },
        Service::Tcp {
            name: "central".into(),
            addr: central.to_string(),
        },
    ];
    let result = lookup(&services, b"key", &opts()).await;
    assert_eq!(result.values, vec![b"a:1".to_vec()]);
    assert!(matches!(
        result.services[0].1,
        Err(AdvertiseError::Abandoned)
    ));
}

#[tokio::test]
async fn lookup_fails_only_when_all_fail() {
    let broken = tcp_server(|_| None).await;
    let services = vec![Service::Tcp {
        name: "central".into(),
        addr: broken.to_string(),
    }];
    let err = lookup(&services, b"key", &opts())
        .await
        .into_result()
        .unwrap_err();
    assert_eq!(err.reason(), "lookup_failed");
    let err = lookup(&[], b"key", &opts())
        .await
        .into_result()
        .unwrap_err();
    assert_eq!(err.reason(), "lookup_failed");
}

#[tokio::test]
async fn affix_two_step_resolution() {
    // The values the Affix-enabled node manager run published (nodemanager_advertised_affix).
    let id = "592341b61c284815f3d0ff7311ed02873889bf4f";
    let relayed = "0123456789abcdef0123456789abcdef01234567";
    let central = table_server(HashMap::from([
        (id.as_bytes().to_vec(), vec![b"127.0.0.1".to_vec()]),
        (
            format!("{id},1224,TCP").into_bytes(),
            vec![b"(NamingAndResolverAffix)".to_vec()],
        ),
        (relayed.as_bytes().to_vec(), vec![b"10.9.9.9".to_vec()]),
        (
            format!("{relayed},1224,TCP").into_bytes(),
            vec![b"(CoordinationAffix)(TCPRelayAffix,1.2.3.4:12345)".to_vec()],
        ),
    ]))
    .await;
    let services = vec![Service::Tcp {
        name: "central".into(),
        addr: central.to_string(),
    }];

    let node = NodeAddress::parse(format!("{id}:1224").as_bytes()).unwrap();
    let res = resolve_affix(&services, &node, &opts())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.ips, vec![b"127.0.0.1".to_vec()]);
    assert_eq!(res.reachability, Some(AffixReachability::Direct));

    let node = NodeAddress::parse(format!("{relayed}:1224").as_bytes()).unwrap();
    let res = resolve_affix(&services, &node, &opts())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(res.reachability, Some(AffixReachability::Nat));

    let direct = NodeAddress::parse(b"10.0.0.1:1224").unwrap();
    assert!(resolve_affix(&services, &direct, &opts()).await.is_none());
}

#[tokio::test]
async fn write_side_is_one_frame() {
    // What the client writes is exactly one frame: the server sees the payload and EOF after.
    let (mut a, mut b) = tokio::io::duplex(1024);
    write_frame(&mut a, b"T4:SGET1:Sk4:I1000:").await.unwrap();
    drop(a);
    assert_eq!(
        read_frame(&mut b, 100).await.unwrap(),
        b"T4:SGET1:Sk4:I1000:"
    );
    assert_eq!(
        read_frame(&mut b, 100).await.unwrap_err().reason(),
        "connection_closed"
    );
}
