//! Module kind `updatesite`: fetch `<base>/metainfo` like a node does (SEATTLE.md E.1), verify it
//! with the trusted key (verdict cached), and with `full_check` fetch every listed file.

use futures::StreamExt;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure};
use seattle_protocol::metainfo::FileEntry;
use sha1::{Digest, Sha1};
use tokio::time::Instant;

use crate::config::Module;
use crate::http_client::{Fetch, HttpClient, HttpMetrics, expect_2xx};
use crate::metainfo_check::{NotMetainfo, VerdictCache};

type F64Gauge = Gauge<f64, std::sync::atomic::AtomicU64>;

#[derive(Default)]
pub struct UpdatesiteProber {
    cache: VerdictCache,
}

/// `<base>/metainfo`, adding the `/` when the base lacks it.
pub fn metainfo_url(base: &str) -> String {
    file_url(base, "metainfo")
}

fn file_url(base: &str, path: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Maps a body that is no metainfo to its reason.
pub fn not_metainfo_failure(e: NotMetainfo) -> ProbeFailure {
    match e {
        NotMetainfo::TooLarge => ProbeFailure::new("too_large", e.to_string()),
        _ => ProbeFailure::new("bad_metainfo", e.to_string()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileOutcome {
    Ok,
    Sha1,
    Size,
    Missing,
}

async fn check_file(
    http: &HttpClient,
    base: &str,
    f: &FileEntry,
    max_file_bytes: u64,
    deadline: Instant,
) -> FileOutcome {
    let url = file_url(base, &f.path);
    // Capped at the largest file checked, not at the listed size: an error page must be seen
    // as such (status first), not as a size mismatch.
    let fetch = Fetch {
        url: &url,
        post: None,
        max_body: Some(max_file_bytes),
    };
    match http.fetch(&fetch, deadline, None).await {
        Err(e) if e.reason == "too_large" => FileOutcome::Size,
        Err(_) => FileOutcome::Missing,
        Ok(r) if !r.status.is_success() => FileOutcome::Missing,
        Ok(r) if r.body.len() as u64 != f.size => FileOutcome::Size,
        Ok(r) if hex::encode(Sha1::digest(&r.body)) != f.sha1 => FileOutcome::Sha1,
        Ok(_) => FileOutcome::Ok,
    }
}

impl UpdatesiteProber {
    pub async fn probe(
        &self,
        target: &str,
        module: &Module,
        ctx: &ProbeContext,
        registry: &mut Registry,
        metrics: &HttpMetrics,
    ) -> Result<(), ProbeFailure> {
        let opts = &module.updatesite;
        // With full_check these always exist, 0 until counted (docs/metrics.md).
        let checked = Gauge::<i64>::default();
        let mismatched = Family::<[(&'static str, &'static str); 1], Gauge>::default();
        if opts.full_check {
            for kind in ["sha1", "size", "missing"] {
                let _ = mismatched.get_or_create(&[("kind", kind)]);
            }
            registry.register(
                "seattle_updatesite_files_checked",
                "Files fetched by the full check",
                checked.clone(),
            );
            registry.register(
                "seattle_updatesite_files_mismatched",
                "Full check: files whose hash or size differ or that could not be fetched",
                mismatched.clone(),
            );
        }

        let url = metainfo_url(target);
        ctx.log(format_args!("fetching {url}"));
        let resp = module
            .http
            .fetch(&Fetch::get(&url), ctx.deadline(), Some(metrics))
            .await;
        metrics.finish(registry);
        let resp = resp?;
        expect_2xx(&resp)?;

        let (a, hit) = self
            .cache
            .analyze(
                resp.body.clone(),
                opts.trusted_key.clone(),
                opts.trusted_key_digest,
            )
            .await
            .map_err(not_metainfo_failure)?;
        ctx.log(format_args!(
            "metainfo lists {} files; signature verdict {} ({})",
            a.files.len(),
            a.signature_valid,
            if hit { "cached" } else { "computed" }
        ));
        let valid = Gauge::<i64>::default();
        valid.set(i64::from(a.signature_valid));
        registry.register(
            "seattle_updatesite_metainfo_signature_valid",
            "1 if the signature verifies with the trusted key",
            valid,
        );
        for (name, help, v) in [
            (
                "seattle_updatesite_metainfo_signed_timestamp_seconds",
                "Signing time of the metainfo",
                a.timestamp,
            ),
            (
                "seattle_updatesite_metainfo_expiry_timestamp_seconds",
                "Signature expiration of the metainfo",
                a.expiration,
            ),
        ] {
            if let Some(v) = v {
                let g = F64Gauge::default();
                g.set(v);
                registry.register(name, help, g);
            }
        }
        let files = Gauge::<i64>::default();
        files.set(a.files.len() as i64);
        registry.register("seattle_updatesite_metainfo_files", "Files listed", files);

        if !a.signature_valid {
            let why = if a.untrusted_key {
                "signed with another key than the trusted one"
            } else {
                "signature does not verify"
            };
            return Err(ProbeFailure::new("signature_invalid", why));
        }
        if a.expired(unix_now()) {
            return Err(ProbeFailure::new(
                "metainfo_expired",
                format!("expired at {:?}", a.expiration),
            ));
        }
        if !opts.full_check {
            return Ok(());
        }

        let deadline = ctx.deadline();
        let max_bytes = opts.full_check_max_file_bytes;
        // Owned copies: the futures must not borrow across the stream (and files are few).
        let candidates: Vec<FileEntry> = a
            .files
            .iter()
            .take(opts.full_check_max_files)
            .filter(|f| f.size <= max_bytes)
            .cloned()
            .collect();
        if candidates.len() < a.files.len() {
            ctx.log(format_args!(
                "full check skips {} files (over the file count or size cap)",
                a.files.len() - candidates.len()
            ));
        }
        let checks = candidates.into_iter().map(|f| {
            let http = module.http.clone();
            let base = target.to_string();
            async move {
                let outcome = check_file(&http, &base, &f, max_bytes, deadline).await;
                (f, outcome)
            }
        });
        let mut outcomes =
            futures::stream::iter(checks).buffer_unordered(opts.full_check_concurrency);
        let mut bad = 0;
        while let Some((f, outcome)) = outcomes.next().await {
            checked.inc();
            let kind = match outcome {
                FileOutcome::Ok => continue,
                FileOutcome::Sha1 => "sha1",
                FileOutcome::Size => "size",
                FileOutcome::Missing => "missing",
            };
            bad += 1;
            ctx.log(format_args!("{}: {kind} mismatch", f.path));
            mismatched.get_or_create(&[("kind", kind)]).inc();
        }
        if bad > 0 {
            return Err(ProbeFailure::new(
                "files_mismatched",
                format!("{bad} files differ from the metainfo"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metainfo_url_adds_one_slash() {
        assert_eq!(metainfo_url("http://h/u/"), "http://h/u/metainfo");
        assert_eq!(metainfo_url("http://h/u"), "http://h/u/metainfo");
    }
}
