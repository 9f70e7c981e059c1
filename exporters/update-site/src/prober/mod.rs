//! The `/probe` modules. One prober per file, each an `async fn probe`; [`UpdateSiteProber`] is
//! the single place that maps a module's `prober:` kind to its prober.

mod cib;
mod http;
mod lockserver;
mod updatesite;

use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, Prober};

use crate::config::{Kind, Module};
use crate::http_client::HttpMetrics;
pub use cib::CibProber;
pub use http::HttpProber;
pub use lockserver::LockserverProber;
pub use updatesite::{UpdatesiteProber, metainfo_url, unix_now};

/// Every kind, with the state they keep across probes (the signature verdict cache).
#[derive(Default)]
pub struct UpdateSiteProber {
    updatesite: UpdatesiteProber,
    http: HttpProber,
    cib: CibProber,
    lockserver: LockserverProber,
}

impl Prober for UpdateSiteProber {
    type Module = Module;

    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a Module,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
        Box::pin(async move {
            // Every kind speaks HTTP, so every answer starts with the same `seattle_http_*` set.
            let http = HttpMetrics::register(registry);
            match module.kind {
                Kind::Updatesite => {
                    self.updatesite
                        .probe(target, module, ctx, registry, &http)
                        .await
                }
                Kind::Http => self.http.probe(target, module, ctx, registry, &http).await,
                Kind::Cib => self.cib.probe(target, module, ctx, registry, &http).await,
                Kind::Lockserver => {
                    self.lockserver
                        .probe(target, module, ctx, registry, &http)
                        .await
                }
            }
        })
    }
}
