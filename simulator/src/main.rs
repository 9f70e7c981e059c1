//! `seattle_simulator`: a simulated Seattle deployment on loopback.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use seattle_protocol::keys::{PrivateKey, PublicKey};
use seattle_simulator::keys::KeyPair;
use seattle_simulator::scenario::{Addressing, Scenario};
use seattle_simulator::{Options, Ports, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A simulated Seattle testbed on loopback, speaking the real protocols"
)]
struct Args {
    /// Scenario file (YAML); the built-in default scenario when absent.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// Print the built-in default scenario and exit.
    #[arg(long)]
    print_default_scenario: bool,
    /// Validate the scenario and exit.
    #[arg(long)]
    check: bool,
    /// Override the scenario's node count.
    #[arg(long)]
    nodes: Option<usize>,
    /// Override the scenario's seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Override node addressing: `loopback` (own 127.x.y.z each) or `ports` (127.0.0.1, own port).
    #[arg(long)]
    addressing: Option<String>,
    /// Write every service address as JSON to this file once all listen.
    #[arg(long)]
    endpoints_file: Option<PathBuf>,
    /// Write the update site's public key (`e n`) to this file.
    #[arg(long)]
    write_update_key: Option<PathBuf>,
    /// Sign the metainfo with PREFIX.publickey / PREFIX.privatekey (generatekeys.py's files)
    /// instead of a generated key.
    #[arg(long, value_name = "PREFIX")]
    update_key: Option<PathBuf>,
    /// Write the PEM of the CA that signs the simulator's HTTPS certificate to this file (for a
    /// prober's `ca_file`).
    #[arg(long)]
    write_tls_ca: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    advertise_port: u16,
    #[arg(long, default_value_t = 0)]
    advertise_udp_port: u16,
    #[arg(long, default_value_t = 0)]
    dns_port: u16,
    #[arg(long, default_value_t = 0)]
    updatesite_port: u16,
    #[arg(long, default_value_t = 0)]
    cib_port: u16,
    #[arg(long, default_value_t = 0)]
    clearinghouse_port: u16,
    /// The clearinghouse web site over HTTPS (certificate from the simulator's own CA).
    #[arg(long, default_value_t = 0)]
    clearinghouse_https_port: u16,
    #[arg(long, default_value_t = 0)]
    lockserver_port: u16,
    #[arg(long, default_value_t = 0)]
    control_port: u16,
    /// Also listen on this port as the clearinghouse backend (`backend_daemon.py`, 8020 in
    /// production): accepts and closes, enough for a port check. 0 = off.
    #[arg(long, default_value_t = 0)]
    backend_port: u16,
    /// Run idle stand-in processes whose command lines name the clearinghouse's daemons
    /// (`python …/lockserver_daemon.py` …), for the process exporter's clearinghouse profile.
    #[arg(long)]
    stand_in_processes: bool,
    /// Start, measure start-up time and RSS, GetVessels every node concurrently, report, exit.
    #[arg(long)]
    bench_startup: bool,
    /// Log level (error, warn, info, debug).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn load_key(prefix: &std::path::Path) -> anyhow::Result<KeyPair> {
    let read = |ext: &str| {
        let p = prefix.with_extension(ext);
        std::fs::read_to_string(&p).with_context(|| p.display().to_string())
    };
    let public = PublicKey::parse(&read("publickey")?).context("public key is not \"e n\"")?;
    let private =
        PrivateKey::parse(&read("privatekey")?).context("private key is not \"d p q\"")?;
    anyhow::ensure!(
        private.modulus() == public.n,
        "the private key does not belong to the public key"
    );
    Ok(KeyPair { public, private })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log_level))
        .with_writer(std::io::stderr)
        .init();
    if args.print_default_scenario {
        print!("{}", seattle_simulator::scenario::DEFAULT_SCENARIO);
        return Ok(());
    }
    let mut scenario = match &args.scenario {
        Some(p) => Scenario::from_file(p)?,
        None => Scenario::default_scenario(),
    };
    if let Some(n) = args.nodes {
        scenario.nodes.count = n;
        scenario.nodes.hostile.retain(|h| h.node < n);
        scenario.inconsistent_advertise.retain(|h| h.node < n);
        scenario
            .zenodotus
            .names
            .retain(|z| z.node.is_none_or(|i| i < n));
        let total: usize = scenario.states.values().sum();
        if total > n {
            scenario.states.clear();
        }
    }
    if let Some(s) = args.seed {
        scenario.seed = s;
    }
    match args.addressing.as_deref() {
        None => {}
        Some("loopback") => scenario.nodes.addressing = Addressing::Loopback,
        Some("ports") => scenario.nodes.addressing = Addressing::Ports,
        Some(o) => anyhow::bail!("--addressing: expected loopback or ports, got {o}"),
    }
    if args.check {
        seattle_simulator::world::World::build(&scenario).map_err(|e| anyhow::anyhow!(e))?;
        println!("scenario OK");
        return Ok(());
    }
    let update_key = args.update_key.as_deref().map(load_key).transpose()?;
    let t0 = Instant::now();
    let sim = seattle_simulator::start(Options {
        scenario,
        ports: Ports {
            advertise_tcp: args.advertise_port,
            advertise_udp: args.advertise_udp_port,
            dns: args.dns_port,
            updatesite: args.updatesite_port,
            cib: args.cib_port,
            clearinghouse: args.clearinghouse_port,
            clearinghouse_https: args.clearinghouse_https_port,
            lockserver: args.lockserver_port,
            control: args.control_port,
        },
        update_key,
    })
    .await?;
    let started = t0.elapsed();
    let ep = sim.endpoints().context("endpoints")?;
    if let Some(p) = &args.write_update_key {
        std::fs::write(p, &ep.update_public_key).with_context(|| p.display().to_string())?;
    }
    if let Some(p) = &args.write_tls_ca {
        std::fs::write(p, &ep.tls_ca_cert).with_context(|| p.display().to_string())?;
    }
    if let Some(p) = &args.endpoints_file {
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&ep)?)?;
        std::fs::rename(&tmp, p).with_context(|| p.display().to_string())?;
    }
    if args.bench_startup {
        return bench(&sim, started).await;
    }
    if args.backend_port != 0 {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", args.backend_port))
            .await
            .context("--backend-port")?;
        tokio::spawn(async move {
            loop {
                // The real backend needs an auth code for everything; a connect is all we offer.
                let _ = l.accept().await;
            }
        });
    }
    let _stand_ins = if args.stand_in_processes {
        stand_ins()?
    } else {
        Vec::new()
    };
    println!(
        "seattle_simulator: {} nodes up in {:.2?}",
        ep.node_count, started
    );
    println!(
        "  advertise (TCP, central/central_v2)  {}",
        ep.advertise_tcp
    );
    println!(
        "  advertise (UDP)                      {}",
        ep.advertise_udp
    );
    println!(
        "  Zenodotus DNS (UDP), zone {:<10} {}",
        ep.zenodotus_zone, ep.zenodotus_dns
    );
    println!(
        "  update site                          {}",
        ep.updatesite_url
    );
    println!(
        "  installer builder XML-RPC            {}",
        ep.cib_xmlrpc_url
    );
    println!(
        "  clearinghouse web                    {}",
        ep.clearinghouse_url
    );
    println!(
        "  clearinghouse web (HTTPS)            {}",
        ep.clearinghouse_https_url
    );
    println!(
        "  lockserver XML-RPC                   {}",
        ep.lockserver_url
    );
    println!(
        "  control API                          {}truth",
        ep.control_url
    );
    if let Some(first) = ep.nodes.first() {
        println!(
            "  node managers                        {first} … {}",
            ep.nodes.last().cloned().unwrap_or_default()
        );
    }
    tokio::signal::ctrl_c().await?;
    println!("seattle_simulator: stopping");
    Ok(())
}

/// The clearinghouse's long-running scripts, as `ps` shows them in production.
const CLEARINGHOUSE_SCRIPTS: [&str; 7] = [
    "lockserver/lockserver_daemon.py",
    "backend/backend_daemon.py",
    "polling/check_active_db_nodes.py",
    "node_state_transitions/transition_donation_to_canonical.py",
    "node_state_transitions/transition_canonical_to_twopercent.py",
    "node_state_transitions/transition_twopercent_to_twopercent.py",
    "node_state_transitions/transition_onepercentmanyevents_to_canonical.py",
];

/// Idle `sleep` processes whose argv[0] reads `python /home/ch/clearinghouse/<script>`; they die
/// with the simulator (parent-death signal, and kill on drop).
fn stand_ins() -> anyhow::Result<Vec<tokio::process::Child>> {
    use std::os::unix::process::CommandExt;
    CLEARINGHOUSE_SCRIPTS
        .iter()
        .map(|script| {
            let mut cmd = std::process::Command::new("sleep");
            cmd.arg0(format!("python /home/ch/clearinghouse/{script}"))
                .arg("infinity")
                .stdin(std::process::Stdio::null());
            // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                    Ok(())
                });
            }
            let mut cmd = tokio::process::Command::from(cmd);
            cmd.kill_on_drop(true);
            cmd.spawn()
                .with_context(|| format!("stand-in for {script}"))
        })
        .collect()
}

/// GetVessels on every node, `concurrency` at a time; returns (answers ok, failures).
async fn getvessels_all(sim: &Arc<Simulator>, concurrency: usize) -> (usize, usize) {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sim.world.nodes.len() {
        if sim.world.nodes[i].behaviour() != seattle_simulator::scenario::Behaviour::Normal {
            continue;
        }
        let addr = seattle_simulator::node_addr(sim, i);
        let permit = sem.clone().acquire_owned().await;
        tasks.spawn(async move {
            let _permit = permit;
            let r = tokio::time::timeout(Duration::from_secs(30), async {
                let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
                s.write_all(b"10\nGetVessels").await.ok()?;
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).await.ok()?;
                Some(buf.ends_with(b"\nSuccess"))
            })
            .await;
            matches!(r, Ok(Some(true)))
        });
    }
    let (mut ok, mut bad) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        if matches!(r, Ok(true)) {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    (ok, bad)
}

async fn bench(sim: &Arc<Simulator>, started: Duration) -> anyhow::Result<()> {
    let rss_start = rss_mb();
    println!(
        "startup: {} nodes listening and advertised in {:.3} s, RSS {:.1} MB",
        sim.world.nodes.len(),
        started.as_secs_f64(),
        rss_start
    );
    let t = Instant::now();
    let (ok, bad) = getvessels_all(sim, 512).await;
    println!(
        "GetVessels on every answering node (512 concurrent): {ok} ok, {bad} failed in {:.3} s, RSS {:.1} MB",
        t.elapsed().as_secs_f64(),
        rss_mb()
    );
    if bad > 0 {
        anyhow::bail!("{bad} GetVessels failed");
    }
    Ok(())
}
