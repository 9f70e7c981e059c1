//! GetVessels decoding and encoding on the real node manager's answer (golden payload).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use seattle_protocol::nodemanager::GetVessels;
use seattle_protocol::nodemanager::codec::{self, PublicCall};
use std::hint::black_box;

fn golden(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/seattle-golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn bench(c: &mut Criterion) {
    let payload = golden("nodemanager_GetVessels_payload.txt");
    let mut group = c.benchmark_group("nodemanager");
    group.throughput(Throughput::Bytes(payload.len() as u64));
    group.bench_function("getvessels_parse_golden", |b| {
        b.iter(|| {
            let reply = codec::split_reply(black_box(&payload)).unwrap();
            GetVessels::parse(reply.text).unwrap()
        })
    });
    let gv = GetVessels::parse(codec::split_reply(&payload).unwrap().text).unwrap();
    group.bench_function("getvessels_encode_golden", |b| {
        b.iter(|| black_box(&gv).encode_reply())
    });
    group.finish();
    c.bench_function("nodemanager/request_classify", |b| {
        let req = PublicCall::GetVesselResources("v1".into()).encode();
        b.iter(|| codec::parse_request(black_box(&req)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
