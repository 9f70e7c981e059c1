//! Session framing (SEATTLE.md A.1) against bytes captured from the real servers.

mod golden;

use seattle_protocol::framing::{
    DEFAULT_MAX_PAYLOAD, Frame, FrameError, decode_frame, encode_frame, read_frame,
    read_frame_until, write_frame,
};

/// Every captured exchange: what each side sent is one well-formed frame that re-encodes to
/// the same bytes (all Seattle senders write plain decimal headers).
#[test]
fn captured_sessions_are_single_canonical_frames() {
    let mut checked = 0;
    for file in [
        "advertise_v2r2py_session_tcp.jsonl",
        "advertise_v1mix_session_tcp.jsonl",
        "advertise_pyserver_session_tcp.jsonl",
        "nodemanager_session_tcp.jsonl",
    ] {
        for rec in golden::jsonl(file) {
            for field in ["client_to_server_b64", "server_to_client_b64"] {
                let bytes = golden::b64(&rec, field);
                if bytes.is_empty() {
                    continue;
                }
                let (frame, used) = decode_frame(&bytes, DEFAULT_MAX_PAYLOAD)
                    .expect("valid frame")
                    .expect("complete frame");
                assert_eq!(used, bytes.len(), "{file}: trailing bytes in {field}");
                let Frame::Payload(p) = frame else {
                    panic!("{file}: unexpected close marker")
                };
                assert_eq!(encode_frame(p), bytes, "{file}: re-encoding differs");
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "only {checked} frames checked");
}

/// Raw probes: wherever the real server answered, our reader accepts the request header the
/// same way; the header cases it refused, we refuse too.
#[test]
fn raw_probe_headers_accepted_or_rejected_like_the_real_reader() {
    let mut answered = 0;
    let mut refused = 0;
    for file in [
        "advertise_v2r2py_raw_probes.jsonl",
        "advertise_v1mix_raw_probes.jsonl",
        "advertise_pyserver_raw_probes.jsonl",
        "nodemanager_raw_probes.jsonl",
    ] {
        for rec in golden::jsonl(file) {
            let case = rec["case"].as_str().unwrap_or("").to_string();
            if rec.get("sent_b64").is_none() {
                continue;
            }
            let sent = golden::b64(&rec, "sent_b64");
            let received = golden::b64(&rec, "received_b64");
            let decoded = decode_frame(&sent, DEFAULT_MAX_PAYLOAD);
            if !received.is_empty() {
                assert!(
                    matches!(decoded, Ok(Some((Frame::Payload(_), _)))),
                    "{file} {case}: server answered but we reject: {decoded:?}"
                );
                answered += 1;
            } else if case.contains("non-digit") || case.contains("too long") {
                assert!(decoded.is_err(), "{file} {case}: accepted {decoded:?}");
                refused += 1;
            } else if case.contains("-1") {
                assert!(matches!(decoded, Ok(Some((Frame::Closed, _)))), "{case}");
                refused += 1;
            }
        }
    }
    assert!(
        answered >= 9 && refused >= 6,
        "{answered} answered, {refused} refused"
    );
}

#[tokio::test]
async fn async_reader_matches_sans_io_on_golden_reply() {
    let reply = b"48\nT3:SOK37:L14:S10.0.0.1:122414:S10.0.0.2:28880:0:";
    let mut r: &[u8] = reply;
    let payload = read_frame(&mut r, DEFAULT_MAX_PAYLOAD).await.unwrap();
    assert_eq!(payload, &reply[3..]);

    let mut out = Vec::new();
    write_frame(&mut out, &payload).await.unwrap();
    assert_eq!(out, reply);
}

#[tokio::test]
async fn async_reader_hostile_inputs() {
    let cases: [(&[u8], &str); 7] = [
        (b"", "connection_closed"),
        (b"12", "connection_closed"),
        (b"10\nGetVes", "connection_closed"),
        (b"-1\n", "connection_closed"),
        (b"abc\nGetVessels", "framing"),
        (b"00000000000000000012\n", "framing"),
        (b"9999999999999999999\n", "too_large"),
    ];
    for (input, reason) in cases {
        let mut r: &[u8] = input;
        let err = read_frame(&mut r, DEFAULT_MAX_PAYLOAD).await.unwrap_err();
        assert_eq!(
            err.reason(),
            reason,
            "{:?}: {err}",
            String::from_utf8_lossy(input)
        );
    }
    // The reader stops at the header: the second request stays unread.
    let mut r: &[u8] = b"3\nabc3\ndef";
    assert_eq!(read_frame(&mut r, 10).await.unwrap(), b"abc");
    assert_eq!(r, b"3\ndef");
}

#[tokio::test]
async fn deadline_is_honoured_when_peer_is_silent() {
    let (mut client, _server) = tokio::io::duplex(64);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
    let err = read_frame_until(&mut client, DEFAULT_MAX_PAYLOAD, deadline)
        .await
        .unwrap_err();
    assert!(matches!(err, FrameError::Timeout), "{err:?}");
    assert_eq!(err.reason(), "timeout");
}
