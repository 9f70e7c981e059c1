//! Module kind `http`: the timed fetch of any URL.

use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure};

use crate::config::Module;
use crate::http_client::{Fetch, HttpMetrics, expect_2xx};

#[derive(Default)]
pub struct HttpProber;

impl HttpProber {
    pub async fn probe(
        &self,
        target: &str,
        module: &Module,
        ctx: &ProbeContext,
        registry: &mut Registry,
        metrics: &HttpMetrics,
    ) -> Result<(), ProbeFailure> {
        let resp = module
            .http
            .fetch(&Fetch::get(target), ctx.deadline(), Some(metrics))
            .await;
        metrics.finish(registry);
        let resp = resp?;
        ctx.log(format_args!(
            "HTTP {} with {} body bytes",
            resp.status,
            resp.body.len()
        ));
        expect_2xx(&resp)
    }
}
