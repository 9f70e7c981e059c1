//! Properties: GetVessels and resource files survive encode → parse; request classification
//! keeps arguments intact.

use proptest::prelude::*;
use seattle_protocol::nodemanager::codec::{self, PublicCall, Request, Status};
use seattle_protocol::nodemanager::{GetVessels, Resources, Vessel, VesselStatus};

fn key_string() -> impl Strategy<Value = String> {
    ("[1-9][0-9]{0,6}", "[1-9][0-9]{1,80}").prop_map(|(e, n)| format!("{e} {n}"))
}

fn status() -> impl Strategy<Value = VesselStatus> {
    prop_oneof![
        Just(VesselStatus::Fresh),
        Just(VesselStatus::Started),
        Just(VesselStatus::Stopped),
        Just(VesselStatus::Terminated),
        Just(VesselStatus::ThreadErr),
        Just(VesselStatus::Stale),
        "[A-Za-z]{1,12}".prop_map(|s| VesselStatus::parse(&s)),
    ]
}

fn vessel() -> impl Strategy<Value = Vessel> {
    (
        1u32..500,
        status(),
        any::<bool>(),
        key_string(),
        // Owner info: up to 256 chars without newline; may end in spaces or be empty.
        "[ -~]{0,40}",
        proptest::collection::vec(key_string(), 0..4),
    )
        .prop_map(
            |(n, status, advertise, owner_key, owner_info, user_keys)| Vessel {
                name: format!("v{n}"),
                status,
                advertise,
                owner_key,
                owner_info,
                user_keys,
            },
        )
}

proptest! {
    #[test]
    fn getvessels_round_trip(
        version in "[0-9a-z.-]{1,30}",
        ip in (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()),
        nodekey in key_string(),
        vessels in proptest::collection::vec(vessel(), 0..12),
    ) {
        let gv = GetVessels {
            version,
            nodename: format!("{}.{}.{}.{}", ip.0, ip.1, ip.2, ip.3),
            nodekey,
            vessels,
        };
        let payload = gv.encode_reply();
        let reply = codec::split_reply(&payload).unwrap();
        prop_assert_eq!(reply.status, Status::Success);
        prop_assert_eq!(GetVessels::parse(reply.text).unwrap(), gv);
    }

    #[test]
    fn resources_round_trip(
        quantities in proptest::collection::btree_map("[a-z]{1,12}", 0.0f64..1e12, 0..16),
        messports in proptest::collection::btree_set(any::<u16>(), 0..20),
        connports in proptest::collection::btree_set(any::<u16>(), 0..20),
    ) {
        let quantities = quantities
            .into_iter()
            .filter(|(k, _)| k != "messport" && k != "connport")
            .collect();
        let r = Resources { quantities, messports, connports, calls: 0 };
        prop_assert_eq!(Resources::parse(r.encode().as_bytes()).unwrap(), r);
    }

    #[test]
    fn vessel_names_survive_request_parsing(vessel in "[ -~]{0,30}") {
        let call = PublicCall::GetVesselResources(vessel.clone());
        let payload = call.encode();
        prop_assert_eq!(codec::parse_request(&payload), Request::Public(call));
    }
}
