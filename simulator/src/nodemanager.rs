//! Node managers: one listener per node, answering the node-manager protocol like `nmmain.py`
//! (SEATTLE.md B): one request per connection, `text\nStatus` replies, idle close, at most 4
//! pending connections per source IP.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use seattle_protocol::keys::PublicKey;
use seattle_protocol::signeddata;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::scenario::Behaviour;
use crate::world::{KeyRef, Node, World};

/// Requests above this are refused by closing; real ones (file uploads aside) are a few KB.
const MAX_REQUEST: usize = 4 << 20;
/// `nmconnectionmanager`: a source IP may have this many pending connections.
const MAX_PER_IP: u32 = 4;

/// Number of arguments of each call (`nmrequesthandler.API_dict`) and whether only the owner may
/// call it; `None` for public calls.
fn call_table(name: &[u8]) -> Option<(usize, Option<bool>)> {
    Some(match name {
        b"GetVessels" | b"GetOffcutResources" => (0, None),
        b"GetVesselResources" => (1, None),
        b"StartVessel" => (2, Some(false)),
        b"StartVesselEx" => (3, Some(false)),
        b"StopVessel" | b"ListFilesInVessel" | b"ReadVesselLog" | b"ResetVessel" => {
            (1, Some(false))
        }
        b"AddFileToVessel" => (3, Some(false)),
        b"RetrieveFileFromVessel" | b"DeleteFileInVessel" => (2, Some(false)),
        b"ChangeOwner"
        | b"ChangeUsers"
        | b"ChangeOwnerInformation"
        | b"ChangeAdvertise"
        | b"SplitVessel"
        | b"JoinVessels" => (2, Some(true)),
        _ => return None,
    })
}

fn reply(text: &str, status: &str) -> Vec<u8> {
    format!("{text}\n{status}").into_bytes()
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Answers one request payload (without framing) exactly as the real node manager would.
pub fn answer(world: &World, node: &Node, payload: &[u8]) -> Vec<u8> {
    let call = payload.split(|&b| b == b'|').next().unwrap_or_default();
    let Some((nargs, owner_only)) = call_table(call) else {
        return reply("Unknown Call", "Error");
    };
    let Some(owner_only) = owner_only else {
        return public_call(world, node, call, payload, nargs);
    };
    signed_call(world, node, payload, nargs, owner_only)
        .unwrap_or_else(|| reply("Internal Error", "Error"))
}

fn public_call(world: &World, node: &Node, call: &[u8], payload: &[u8], nargs: usize) -> Vec<u8> {
    // Python split('|', nargs): the last argument keeps any further '|'.
    let args: Vec<&[u8]> = payload.splitn(nargs + 1, |&b| b == b'|').skip(1).collect();
    match call {
        b"GetVessels" => {
            let mut out = world.getvessels_text(node).into_bytes();
            out.extend_from_slice(b"\nSuccess");
            out
        }
        b"GetOffcutResources" => reply(&world.offcut_text(node), "Success"),
        _ => {
            let Some(vessel) = args.first() else {
                return reply("Internal Error", "Error");
            };
            let name = String::from_utf8_lossy(vessel);
            match world.resources_text(node, &name) {
                Some(r) => reply(&r, "Success"),
                None => reply("No such vessel", "Error"),
            }
        }
    }
}

/// Signed calls (SEATTLE.md A.4, B.8). `None` = the real code's `Internal Error`.
fn signed_call(
    world: &World,
    node: &Node,
    payload: &[u8],
    nargs: usize,
    owner_only: bool,
) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(payload).ok()?;
    let (body, _) = text.rsplit_once('\n')?;
    let args: Vec<&str> = body.splitn(nargs + 1, '|').skip(1).collect();
    let vessel_name = *args.first()?;
    let whole = format!("'{text}'");
    {
        let d = node.lock();
        if !d.vessels.iter().any(|v| v.name == vessel_name) {
            return Some(reply("Unknown Vessel", "Error"));
        }
    }
    let Ok(sd) = signeddata::parse(payload) else {
        return None;
    };
    if sd.check_expiry(now_unix()).is_err() {
        return Some(reply(&format!("Bad Signature on {whole}"), "Error"));
    }
    let mut d = node.lock();
    let vi = d.vessels.iter().position(|v| v.name == vessel_name)?;
    if let Some(seq) = &sd.sequence
        && d.vessels[vi].last_timestamp.is_none()
        && seq.number != 0
    {
        return Some(reply(&format!("Illegal sequence id on {whole}"), "Error"));
    }
    if sd.verify().is_err() {
        return Some(reply(&format!("Bad Signature on {whole}"), "Error"));
    }
    let signer = &sd.public_key;
    let v = &d.vessels[vi];
    let owner = world.resolve(node, &v.owner);
    let is_user = v.users.iter().any(|u| world.resolve(node, u) == *signer);
    if owner != *signer && (owner_only || !is_user) {
        return Some(reply("Insufficient Permissions", "Error"));
    }
    let nodekey = d
        .fixture
        .as_ref()
        .map(|f| f.nodekey.to_key_string())
        .unwrap_or_else(|| node.key.to_key_string());
    if sd.check_destination(&nodekey).is_err() {
        return Some(reply(
            "Signature problem: Not destined for this node Not destined for this node",
            "Error",
        ));
    }
    if let Some(t) = sd.timestamp {
        match d.vessels[vi].last_timestamp {
            Some(old) if old == t => {
                return Some(reply("Signature problem: Timestamps match", "Error"));
            }
            Some(old) if old > t => {
                return Some(reply("Signature problem: Timestamps out of order", "Error"));
            }
            _ => {}
        }
        d.vessels[vi].last_timestamp = Some(t);
    }
    let call = body.split('|').next().unwrap_or_default();
    let v = &mut d.vessels[vi];
    let out = match call {
        "ChangeOwnerInformation" => {
            let info = args.get(1).copied().unwrap_or_default();
            if info.len() > 256 {
                return Some(reply("String Too Long", "Error"));
            }
            v.owner_info = info.to_string();
            reply("", "Success")
        }
        "ChangeUsers" => {
            let list = args.get(1).copied().unwrap_or_default();
            let mut users = Vec::new();
            for k in list.split('|').filter(|k| !k.is_empty()) {
                match PublicKey::parse(k) {
                    Ok(k) => users.push(KeyRef::Literal(Arc::new(k))),
                    Err(_) => return Some(reply("Invalid Key String", "Error")),
                }
            }
            v.users = users;
            reply("", "Success")
        }
        "ChangeOwner" => match args.get(1).and_then(|k| PublicKey::parse(k).ok()) {
            Some(k) => {
                v.owner = KeyRef::Literal(Arc::new(k));
                reply("", "Success")
            }
            None => reply("Invalid Key String", "Error"),
        },
        "ChangeAdvertise" => match args.get(1).copied() {
            Some("True") => {
                v.advertise = true;
                reply("", "Success")
            }
            Some("False") => {
                v.advertise = false;
                reply("", "Success")
            }
            other => reply(
                &format!(
                    "Invalid advertisement setting '{}'",
                    other.unwrap_or_default()
                ),
                "Error",
            ),
        },
        "AddFileToVessel" => {
            let f = args.get(1).copied().unwrap_or_default();
            if f.is_empty() {
                return Some(reply("Filename is empty", "Error"));
            }
            if !v.files.iter().any(|x| x == f) {
                v.files.push(f.to_string());
            }
            reply("", "Success")
        }
        "ListFilesInVessel" => reply(&v.files.join(" "), "Success"),
        "ReadVesselLog" => reply("", "Success"),
        "StartVessel" | "StartVesselEx" => {
            if v.status == "Started" {
                reply("Vessel has already been started", "Error")
            } else {
                v.status = "Started";
                reply("Started", "Success")
            }
        }
        "StopVessel" => {
            if v.status == "Started" {
                v.status = "Stopped";
                reply("Stopped", "Success")
            } else {
                reply(
                    &format!("Cannot stop vessel with status '{}'", v.status),
                    "Error",
                )
            }
        }
        "ResetVessel" => {
            v.status = "Fresh";
            v.files.clear();
            reply("", "Success")
        }
        _ => reply("", "Success"),
    };
    Some(out)
}

/// Runtime of one node: its listener task and the per-IP pending counts.
#[derive(Default)]
pub struct NodeRuntime {
    pub listener: Mutex<Option<AbortHandle>>,
    pending: Mutex<HashMap<IpAddr, u32>>,
}

/// Binds node `i`'s listener (reusing its previous port) and starts accepting. Returns the port.
pub async fn start_node(
    world: Arc<World>,
    rts: Arc<Vec<NodeRuntime>>,
    i: usize,
) -> std::io::Result<u16> {
    let node = &world.nodes[i];
    let listener = TcpListener::bind(SocketAddr::new(IpAddr::V4(node.ip), node.port())).await?;
    let port = listener.local_addr()?.port();
    node.port.store(port, std::sync::atomic::Ordering::Relaxed);
    let task = tokio::spawn(accept_loop(listener, world.clone(), rts.clone(), i));
    let rt = &rts[i];
    if let Some(old) = rt
        .listener
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .replace(task.abort_handle())
    {
        old.abort();
    }
    Ok(port)
}

/// Stops node `i` listening: new connections are refused.
pub fn stop_node(rts: &[NodeRuntime], i: usize) {
    if let Some(h) = rts[i]
        .listener
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
    {
        h.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    world: Arc<World>,
    rts: Arc<Vec<NodeRuntime>>,
    i: usize,
) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            // Out of descriptors or similar: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let ip = peer.ip();
        {
            let mut p = rts[i].pending.lock().unwrap_or_else(|e| e.into_inner());
            let c = p.entry(ip).or_default();
            if *c >= MAX_PER_IP {
                continue; // dropped: closed immediately, like the 5th connection of one IP
            }
            *c += 1;
        }
        let (world, rts) = (world.clone(), rts.clone());
        tokio::spawn(async move {
            connection(stream, &world, i).await;
            let mut p = rts[i].pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = p.get_mut(&ip) {
                *c -= 1;
                if *c == 0 {
                    p.remove(&ip);
                }
            }
        });
    }
}

async fn connection(mut stream: TcpStream, world: &World, i: usize) {
    let node = &world.nodes[i];
    let behaviour = node.behaviour();
    if behaviour == Behaviour::Hang {
        crate::hostile::hold(&mut stream).await;
        return;
    }
    let idle = Duration::from_secs_f64(world.idle_timeout.max(0.1));
    let Ok(Ok(payload)) = tokio::time::timeout(
        idle,
        seattle_protocol::framing::read_frame(&mut stream, MAX_REQUEST),
    )
    .await
    else {
        return; // framing error or idle: close without answer
    };
    let out = answer(world, node, &payload);
    let framed = seattle_protocol::framing::encode_frame(&out);
    let slow = Duration::from_secs_f64(world.slow_delay.max(0.0));
    crate::hostile::send(&mut stream, &framed, behaviour, slow).await;
}
