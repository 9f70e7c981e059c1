//! Node-manager codecs and client replayed against bytes captured from the real node manager.

mod golden;

use std::net::SocketAddr;
use std::time::Duration;

use seattle_protocol::framing::{self, DEFAULT_MAX_PAYLOAD, Frame};
use seattle_protocol::nodemanager::client::Client;
use seattle_protocol::nodemanager::codec::{self, PublicCall, Request, Status};
use seattle_protocol::nodemanager::{GetVessels, Resources, VesselStatus};
use seattle_protocol::signeddata;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn unframe(bytes: &[u8]) -> &[u8] {
    match framing::decode_frame(bytes, DEFAULT_MAX_PAYLOAD).unwrap() {
        Some((Frame::Payload(p), used)) => {
            assert_eq!(used, bytes.len(), "one frame per direction");
            p
        }
        other => panic!("not one complete frame: {other:?}"),
    }
}

#[test]
fn public_requests_are_byte_exact() {
    let exchanges = golden::jsonl("nodemanager_session_tcp.jsonl");
    let mut seen = 0;
    for ex in &exchanges {
        let sent = golden::base64(&ex["request_b64"]);
        let call = match unframe(&sent) {
            b"GetVessels" => PublicCall::GetVessels,
            b"GetVesselResources|v1" => PublicCall::GetVesselResources("v1".into()),
            b"GetVesselResources|v999" => PublicCall::GetVesselResources("v999".into()),
            b"GetOffcutResources" => PublicCall::GetOffcutResources,
            _ => continue,
        };
        assert_eq!(framing::encode_frame(&call.encode()), sent);
        seen += 1;
    }
    // 7 GetVessels (conns 1-3, 22, 36, 37 … ) plus v1, v999 and offcut.
    assert!(seen >= 9, "{seen}");
}

#[test]
fn every_reply_splits_and_the_server_parser_agrees_with_the_real_answer() {
    for ex in golden::jsonl("nodemanager_session_tcp.jsonl") {
        let desc = ex["description"].as_str().unwrap();
        let request = golden::base64(&ex["request_b64"]);
        let response = golden::base64(&ex["response_b64"]);
        let reply = codec::split_reply(unframe(&response)).unwrap();
        let text = String::from_utf8_lossy(reply.text);
        match codec::parse_request(unframe(&request)) {
            Request::UnknownCall => assert_eq!(text, "Unknown Call", "{desc}"),
            Request::InternalError => assert_eq!(text, "Internal Error", "{desc}"),
            Request::Public(PublicCall::GetVesselResources(v)) if v == "v999" => {
                assert_eq!(text, "No such vessel", "{desc}")
            }
            Request::Public(_) => assert_eq!(reply.status, Status::Success, "{desc}"),
            Request::Signed { body, .. } => {
                // The block after the body parses; most were made by the real signer.
                let sd = signeddata::parse(unframe(&request)).unwrap();
                assert_eq!(sd.data, body, "{desc}");
            }
        }
    }
}

#[test]
fn signed_public_call_is_an_unknown_call() {
    for case in golden::jsonl("nodemanager_extra_signed_cases.jsonl") {
        let request = case["request"].as_str().unwrap().as_bytes();
        let response = case["response"].as_str().unwrap();
        match codec::parse_request(request) {
            Request::UnknownCall => assert_eq!(response, "Unknown Call\nError"),
            Request::Signed { call, .. } => assert_eq!(call, "ListFilesInVessel"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn getvessels_golden_parses_to_the_readme_facts_and_reencodes_identically() {
    let payload = golden::bytes("nodemanager_GetVessels_payload.txt");
    let reply = codec::split_reply(&payload).unwrap();
    assert_eq!(reply.status, Status::Success);
    let gv = GetVessels::parse(reply.text).unwrap();
    assert_eq!(gv.version, "0.2-alpha-20140714-1434");
    assert_eq!(gv.nodename, "127.0.0.1");
    assert_eq!(gv.nodekey, "65537 747340318809666290119336386599");
    assert_eq!(gv.vessels.len(), 10);
    let v3 = gv.vessel("v3").unwrap();
    assert_eq!(v3.status, VesselStatus::Terminated);
    assert_eq!(v3.owner_info, "golden owner info");
    let guest1 = String::from_utf8(golden::bytes("nodemanager_guest1.publickey")).unwrap();
    assert_eq!(v3.user_keys, vec![guest1.clone()]);
    let v4 = gv.vessel("v4").unwrap();
    assert_eq!(v4.status, VesselStatus::Started);
    assert!(!v4.advertise);
    assert_eq!(gv.vessel("v1").unwrap().owner_info, "");
    // guest1 is the user of v3 and the owner of v5 and v6.
    let mine: Vec<_> = gv.accessible_by(&guest1).map(|v| v.name.as_str()).collect();
    assert_eq!(mine, ["v3", "v5", "v6"]);
    // Encoder: same data → same bytes.
    assert_eq!(gv.encode_reply(), payload);

    let affix = golden::bytes("nodemanager_getvessels_affix_payload.txt");
    let gv = GetVessels::parse(codec::split_reply(&affix).unwrap().text).unwrap();
    assert_eq!(gv.nodename, "127.0.0.1", "Nodename stays an IP with Affix");
    assert_eq!(gv.encode_reply(), affix);
}

#[test]
fn every_captured_getvessels_reply_round_trips() {
    let mut n = 0;
    for ex in golden::jsonl("nodemanager_session_tcp.jsonl") {
        if unframe(&golden::base64(&ex["request_b64"])) != b"GetVessels" {
            continue;
        }
        let response = golden::base64(&ex["response_b64"]);
        let payload = unframe(&response);
        let gv = GetVessels::parse(codec::split_reply(payload).unwrap().text).unwrap();
        assert_eq!(gv.encode_reply(), payload);
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn resource_files_parse() {
    let payload = golden::bytes("nodemanager_GetVesselResources_v1_payload.txt");
    let r = Resources::parse(codec::split_reply(&payload).unwrap().text).unwrap();
    assert_eq!(r.get("cpu"), Some(0.02));
    assert_eq!(r.get("memory"), Some(30_000_000.0));
    assert_eq!(r.get("filewrite"), Some(100_000.0));
    assert_eq!(r.get("events"), Some(15.0));
    assert_eq!(
        r.usable_ports().collect::<Vec<_>>(),
        vec![12345, 12346, 12347, 12348]
    );
    assert!(r.calls > 30);
    // The encoder writes `resource` lines only.
    let reparsed = Resources::parse(r.encode().as_bytes()).unwrap();
    assert_eq!(
        reparsed,
        Resources {
            calls: 0,
            ..r.clone()
        }
    );

    let payload = golden::bytes("nodemanager_GetOffcutResources_payload.txt");
    let r = Resources::parse(codec::split_reply(&payload).unwrap().text).unwrap();
    assert_eq!(r.get("cpu"), Some(0.002));
    assert_eq!(r.get("diskused"), Some(100_000.0));
    assert_eq!(r.usable_ports().count(), 0);
}

/// A one-shot server that reads one request frame (as the real node manager does before it
/// answers or closes), answers with `response` (raw bytes) and closes.
async fn replay_server(response: Vec<u8>, expect_request: Option<Vec<u8>>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let got = framing::read_frame(&mut sock, DEFAULT_MAX_PAYLOAD)
            .await
            .unwrap();
        if let Some(expected) = expect_request {
            assert_eq!(framing::encode_frame(&got), expected);
        }
        sock.write_all(&response).await.unwrap();
    });
    addr
}

#[tokio::test]
async fn client_replays_the_captured_exchanges() {
    let client = Client::default();
    let t = Duration::from_secs(10);
    for ex in golden::jsonl("nodemanager_session_tcp.jsonl") {
        let request = golden::base64(&ex["request_b64"]);
        let response = golden::base64(&ex["response_b64"]);
        let addr = replay_server(response.clone(), Some(request.clone())).await;
        let got = client.raw_call(addr, unframe(&request), t).await.unwrap();
        assert_eq!(got, unframe(&response));
    }
    let gv_reply = golden::bytes("nodemanager_GetVessels_payload.txt");
    let addr = replay_server(framing::encode_frame(&gv_reply), None).await;
    assert_eq!(client.get_vessels(addr, t).await.unwrap().vessels.len(), 10);
    let addr = replay_server(framing::encode_frame(b"No such vessel\nError"), None).await;
    let err = client
        .get_vessel_resources(addr, "v999", t)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "error_reply");
}

#[tokio::test]
async fn raw_probe_answers_become_typed_errors() {
    let client = Client::default();
    let t = Duration::from_secs(10);
    // The real node manager's answer to a bad request is a close with 0 bytes.
    for probe in golden::jsonl("nodemanager_raw_probes.jsonl") {
        let Some(received) = probe.get("received_b64") else {
            continue;
        };
        let received = golden::base64(received);
        let addr = replay_server(received.clone(), None).await;
        let result = client.raw_call(addr, b"GetVessels", t).await;
        if received.is_empty() {
            assert_eq!(result.unwrap_err().reason(), "connection_closed");
        } else {
            let payload = result.unwrap();
            assert!(GetVessels::parse(codec::split_reply(&payload).unwrap().text).is_ok());
        }
    }
    // Garbage, truncation, oversize and a bad status word, each with its reason.
    let cases: [(&[u8], &str); 5] = [
        (b"abc\nxyz", "framing"),
        (b"100\nshort", "connection_closed"),
        (b"999999999999\n", "too_large"),
        (b"7\nSuccess", "bad_reply"),
        (b"8\nx\nBanana", "bad_reply"),
    ];
    for (bytes, reason) in cases {
        let addr = replay_server(bytes.to_vec(), None).await;
        let err = client.get_vessels(addr, t).await.unwrap_err();
        assert_eq!(err.reason(), reason, "{:?}", String::from_utf8_lossy(bytes));
    }
}

#[tokio::test]
async fn silent_node_times_out_and_closed_port_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        // Hold the connection open without answering.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(sock);
    });
    let client = Client::default();
    let err = client
        .get_vessels(addr, Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "timeout");
    holder.abort();

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = client
        .get_vessels(addr, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "connection_refused");
}

#[tokio::test]
async fn never_more_than_four_connections_to_one_node() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let reply = framing::encode_frame(&golden::bytes("nodemanager_GetVessels_payload.txt"));
    let (o, p) = (open.clone(), peak.clone());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let now = o.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            let (o, reply) = (o.clone(), reply.clone());
            tokio::spawn(async move {
                let mut req = [0u8; 13];
                let _ = sock.read_exact(&mut req).await;
                // Keep the slot busy a little so the client's requests overlap.
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Count the close before the client can see the reply.
                o.fetch_sub(1, Ordering::SeqCst);
                let _ = sock.write_all(&reply).await;
            });
        }
    });
    let client = Client::default();
    let calls = (0..10).map(|_| client.get_vessels(addr, Duration::from_secs(20)));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().vessels.len(), 10);
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= 4, "peak {peak}");
    assert!(peak >= 2, "requests should overlap, peak {peak}");
}

/// Like the real node manager: a connection counts until its handler closes it, after the
/// reply, and a 5th pending connection is closed without an answer. A client that gives its
/// slot back on reading the reply lets a 5th connection in while the 4th is still counted.
#[tokio::test]
async fn a_slot_is_kept_until_the_node_closes() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let reply = framing::encode_frame(&golden::bytes("nodemanager_GetVessels_payload.txt"));
    let (o, r) = (open.clone(), refused.clone());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            if o.fetch_add(1, Ordering::SeqCst) >= 4 {
                o.fetch_sub(1, Ordering::SeqCst);
                r.fetch_add(1, Ordering::SeqCst);
                drop(sock);
                continue;
            }
            let (o, reply) = (o.clone(), reply.clone());
            tokio::spawn(async move {
                let mut req = [0u8; 13];
                let _ = sock.read_exact(&mut req).await;
                let _ = sock.write_all(&reply).await;
                // The handler finishes after the reply; the connection counts until then.
                tokio::time::sleep(Duration::from_millis(30)).await;
                o.fetch_sub(1, Ordering::SeqCst);
                drop(sock);
            });
        }
    });
    let client = Client::default();
    let calls = (0..12).map(|_| client.get_vessels(addr, Duration::from_secs(20)));
    for r in futures::future::join_all(calls).await {
        assert_eq!(r.unwrap().vessels.len(), 10);
    }
    assert_eq!(refused.load(Ordering::SeqCst), 0);
}
