//! Module kind `http`: the timed fetch of any URL.

use futures::future::BoxFuture;
use prometheus_client::registry::Registry;
use seattle_exporter_toolkit::probe::{ProbeContext, ProbeFailure};

use super::KindProber;
use crate::config::Module;
use crate::http_client::{Fetch, HttpMetrics, expect_2xx};

#[derive(Default)]
pub struct HttpProber;

impl KindProber for HttpProber {
    fn probe<'a>(
        &'a self,
        target: &'a str,
        module: &'a Module,
        ctx: &'a ProbeContext,
        registry: &'a mut Registry,
    ) -> BoxFuture<'a, Result<(), ProbeFailure>> {
        Box::pin(async move {
            let metrics = HttpMetrics::register(registry);
            let resp = module
                .http
                .fetch(&Fetch::get(target), ctx.deadline(), Some(&metrics))
                .await;
            metrics.finish(registry);
            let resp = resp?;
            ctx.log(format_args!(
                "HTTP {} with {} body bytes",
                resp.status,
                resp.body.len()
            ));
            expect_2xx(&resp)
        })
    }
}
