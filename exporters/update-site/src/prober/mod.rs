//! The `/probe` modules. One prober per file behind [`KindProber`]; [`UpdateSiteProber`] is the
//! single place that maps a module's `prober:` kind to its prober.

mod cib;
mod http;
mod lockserver;
mod updatesite;

use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure, Prober};

use crate::config::{Kind, Module};
pub use cib::CibProber;
pub use http::HttpProber;
pub use lockserver::LockserverProber;
pub use updatesite::{UpdatesiteProber, metainfo_url, unix_now};

/// One kind of module.
pub trait KindProber: Send + Sync {
    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a Module,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>>;
}

/// Every kind, with the state they keep across probes (the signature verdict cache).
#[derive(Default)]
pub struct UpdateSiteProber {
    updatesite: UpdatesiteProber,
    http: HttpProber,
    cib: CibProber,
    lockserver: LockserverProber,
}

impl UpdateSiteProber {
    fn of(&self, kind: Kind) -> &dyn KindProber {
        match kind {
            Kind::Updatesite => &self.updatesite,
            Kind::Http => &self.http,
            Kind::Cib => &self.cib,
            Kind::Lockserver => &self.lockserver,
        }
    }
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
        self.of(module.kind).probe(target, module, ctx, registry)
    }
}
