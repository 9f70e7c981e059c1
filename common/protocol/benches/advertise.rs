//! Advertise codec speed (SEATTLE.md C.2): decoding a 10,000-value GET reply (a large
//! `%all` or v2-key lookup) and encoding a GET request.

use criterion::{Criterion, criterion_group, criterion_main};
use seattle_protocol::advertise::codec::{
    Request, decode_get_reply, encode_get_reply, encode_request,
};
use std::hint::black_box;

fn node_values(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("10.{}.{}.{}:1224", i >> 16, (i >> 8) & 255, i & 255).into_bytes())
        .collect()
}

fn bench(c: &mut Criterion) {
    let reply = encode_get_reply(&node_values(10_000));
    c.bench_function("decode_get_reply_10000_values", |b| {
        b.iter(|| decode_get_reply(black_box(&reply)).map(|v| v.len()))
    });

    // A node-key advertise key as the node manager sends it: `str(dict)` of a 1024-bit key.
    let key = format!("{{'e': 65537L, 'n': {}L}}", "7".repeat(309)).into_bytes();
    let request = Request::Get { key, maxvals: 100 };
    c.bench_function("encode_get_request", |b| {
        b.iter(|| encode_request(black_box(&request)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
