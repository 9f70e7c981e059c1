//! Advertise codec (SEATTLE.md C.2, C.4, D.2) against traffic captured from the real clients
//! and servers.

mod golden;

use seattle_protocol::advertise::codec::{
    Request, decode_get_reply, decode_put_reply, decode_request, decode_udp_get_reply,
    decode_udp_put_reply, decode_udp_request, encode_get_reply, encode_put_reply, encode_request,
    encode_udp_get_reply, encode_udp_put_reply, encode_udp_request,
};
use seattle_protocol::advertise::node_address::{
    AffixReachability, NodeAddress, NodeHost, affix_reachability,
};
use seattle_protocol::framing::{DEFAULT_MAX_PAYLOAD, Frame, decode_frame};
use seattle_protocol::serialize::Value;

/// First frame's payload, if the bytes start with a complete valid frame.
fn payload(framed: &[u8]) -> Option<Vec<u8>> {
    match decode_frame(framed, DEFAULT_MAX_PAYLOAD) {
        Ok(Some((Frame::Payload(p), _))) => Some(p.to_vec()),
        _ => None,
    }
}

fn repr_list(values: &[Vec<u8>]) -> String {
    Value::List(values.iter().cloned().map(Value::Str).collect()).py_repr()
}

const SERVERS: [&str; 3] = ["v2r2py", "v1mix", "pyserver"];

/// Probes the plain-Python server treats unlike the repy servers.
const PYSERVER_DIFFERS: [&str; 2] = ["Python long", "list instead of tuple"];

/// Every captured TCP exchange: requests decode server-side and re-encode byte for byte (so our
/// client would send the same bytes); replies decode client-side and re-encode byte for byte
/// (so the simulator answers like the real server). Lookup results match the real client's.
#[test]
fn tcp_sessions_both_directions() {
    for server in SERVERS {
        let mut get_results = Vec::new();
        for rec in golden::jsonl(&format!("advertise_{server}_session_tcp.jsonl")) {
            let request =
                payload(&golden::b64(&rec, "client_to_server_b64")).expect("request frame");
            let reply = payload(&golden::b64(&rec, "server_to_client_b64")).expect("reply frame");
            let decoded = decode_request(&request).expect("server-side decode");
            assert_eq!(encode_request(&decoded), request, "{server}: request bytes");
            match decoded {
                Request::Put { .. } => {
                    decode_put_reply(&reply).expect("PUT reply");
                    assert_eq!(encode_put_reply(), reply);
                }
                Request::Get { .. } => {
                    let values = decode_get_reply(&reply).expect("GET reply");
                    assert_eq!(encode_get_reply(&values), reply, "{server}: reply bytes");
                    get_results.push(repr_list(&values));
                }
            }
        }
        // Each lookup the real client reported is, in order, one of the captured GET replies.
        let mut replies = get_results.iter();
        let mut matched = 0;
        for call in golden::jsonl(&format!("advertise_{server}_client_calls.jsonl")) {
            let result = call["result_repr"].as_str().unwrap_or("");
            if !result.starts_with('[') {
                continue;
            }
            assert!(
                replies.any(|r| r == result),
                "{server}: step {} result {result} not found in order",
                call["step"]
            );
            matched += 1;
        }
        assert!(matched >= 9, "{server}: only {matched} lookups matched");
    }
}

/// Raw probes: the server answered exactly when our server-side decoder accepts the request.
/// The decoder models the repy servers; where the plain-Python server differs, the test
/// asserts the difference.
#[test]
fn raw_probes_rejected_like_the_real_servers() {
    for server in SERVERS {
        let mut accepted = 0;
        let mut rejected = 0;
        for rec in golden::jsonl(&format!("advertise_{server}_raw_probes.jsonl")) {
            let case = rec["case"].as_str().unwrap_or("");
            let answered = !golden::b64(&rec, "received_b64").is_empty();
            let ours = payload(&golden::b64(&rec, "sent_b64")).map(|p| decode_request(&p));
            let we_accept = matches!(ours, Some(Ok(_)));
            let differs = server == "pyserver" && PYSERVER_DIFFERS.iter().any(|c| case.contains(c));
            assert_eq!(
                we_accept != differs,
                answered,
                "{server} {case}: ours {ours:?}"
            );
            if answered {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        assert!(
            accepted >= 5 && rejected >= 15,
            "{server}: {accepted}/{rejected}"
        );
    }
}

/// UDP datagrams: request ids survive, replies match ids, both sides re-encode byte for byte.
#[test]
fn udp_datagrams_both_directions() {
    let datagrams = golden::jsonl("advertise_udp_datagrams.jsonl");
    assert_eq!(datagrams.len() % 2, 0);
    let mut pairs = 0;
    for pair in datagrams.chunks(2) {
        assert_eq!(pair[0]["dir"], "client->server");
        assert_eq!(pair[1]["dir"], "server->client");
        assert_eq!(
            pair[1]["peer_port"], 10102,
            "reply comes from the server port"
        );
        let request = golden::b64(&pair[0], "b64");
        let reply = golden::b64(&pair[1], "b64");
        let (decoded, id) = decode_udp_request(&request).expect("UDP request");
        let id_num = id
            .as_i64()
            .and_then(|i| u64::try_from(i).ok())
            .expect("int id");
        assert_eq!(encode_udp_request(&decoded, id_num), request);
        // A TCP server would reject the UDP form.
        assert!(decode_request(&request).is_err());
        match decoded {
            Request::Put { .. } => {
                decode_udp_put_reply(&reply, id_num).expect("UDP PUT reply");
                assert!(decode_udp_put_reply(&reply, id_num + 1).is_err());
                assert_eq!(encode_udp_put_reply(&id), reply);
            }
            Request::Get { .. } => {
                let values = decode_udp_get_reply(&reply, id_num).expect("UDP GET reply");
                assert!(decode_udp_get_reply(&reply, id_num + 1).is_err());
                assert_eq!(encode_udp_get_reply(&values, &id), reply);
            }
        }
        pairs += 1;
    }
    assert_eq!(pairs, 6);
}

/// What node managers and Affix really announce parses into the right node-string forms.
#[test]
fn node_manager_announcements() {
    let mut direct = 0;
    let mut affix = 0;
    let mut stacks = 0;
    for rec in golden::jsonl("nodemanager_advertise_put_requests.jsonl") {
        let framed = golden::b64(&rec, "session_framed_b64");
        let request = payload(&framed).expect("frame");
        let Ok(Request::Put { key, value, ttl }) = decode_request(&request) else {
            panic!("not a PUT: {rec}")
        };
        assert_eq!(
            seattle_protocol::framing::encode_frame(&encode_request(&Request::Put {
                key: key.clone(),
                value: value.clone(),
                ttl
            })),
            framed
        );
        let origin = rec["origin"].as_str().unwrap_or("");
        if origin.contains("Affix DISABLED") {
            let node = NodeAddress::parse(&value).expect("node string");
            assert!(matches!(node.host, NodeHost::Ip(_)), "{origin}");
            assert_eq!((node.port, ttl), (1224, 750));
            direct += 1;
        } else if origin.contains("Affix ENABLED") {
            let node = NodeAddress::parse(&value).expect("node string");
            assert!(matches!(node.host, NodeHost::Affix(_)), "{origin}");
            assert_eq!(
                node.affix_stack_key().map(String::into_bytes),
                Some(b"592341b61c284815f3d0ff7311ed02873889bf4f,1224,TCP".to_vec())
            );
            affix += 1;
        } else if origin.contains("CoordinationAffix") {
            assert!(key.ends_with(b",1224,TCP"));
            assert_eq!(affix_reachability(&value), AffixReachability::Direct);
            stacks += 1;
        }
    }
    assert_eq!((direct, affix, stacks), (7, 7, 1));
}

#[test]
fn node_manager_lookup_results() {
    for rec in golden::jsonl("nodemanager_advertised_affix.jsonl")
        .into_iter()
        .chain(golden::jsonl("nodemanager_advertised_noaffix.jsonl"))
    {
        let key = rec["advertise_key"].as_str().unwrap_or("");
        let values: Vec<&str> = rec["lookup_result"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        if key.starts_with("{'e'") {
            for v in values {
                let node = NodeAddress::parse(v.as_bytes()).expect(v);
                assert_eq!(node.to_string(), v);
                assert!(matches!(node.host, NodeHost::Ip(_) | NodeHost::Affix(_)));
            }
        } else if key.ends_with(",TCP") {
            assert_eq!(
                affix_reachability(values[0].as_bytes()),
                AffixReachability::Direct
            );
        }
    }
}

/// Clearinghouse state keys are long `str(dict)` keys; GET requests for them round-trip.
#[test]
fn state_key_requests() {
    let mut n = 0;
    for rec in golden::jsonl("clearinghouse_state_keys.jsonl") {
        let key = rec["advertise_key"]
            .as_str()
            .expect("key")
            .as_bytes()
            .to_vec();
        let request = Request::Get {
            key,
            maxvals: 10_485_760,
        };
        assert_eq!(decode_request(&encode_request(&request)), Ok(request));
        n += 1;
    }
    assert!(n >= 10);
}
