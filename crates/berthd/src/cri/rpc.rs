//! The one wrapper every RPC handler runs in.

use std::future::Future;
use std::time::Instant;

use tonic::{Response, Status};
use tracing::Instrument;

use super::Cri;

/// Whether an RPC may run while start-up recovery is still under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Answers from configuration alone (Version, Status, RuntimeConfig).
    Always,
    /// Reads or changes pods, containers or images.
    WhenReady,
}

impl Cri {
    /// Runs `body` in `span`, refusing it with Unavailable while recovery runs, and logs a failure
    /// once with its code.
    pub(super) async fn rpc<T>(
        &self,
        method: &'static str,
        gate: Gate,
        span: tracing::Span,
        body: impl Future<Output = Result<T, Status>>,
    ) -> Result<Response<T>, Status> {
        if gate == Gate::WhenReady && !self.svc.is_ready() {
            return Err(Status::unavailable(format!(
                "{method}: berthd is recovering its state after a start; retry shortly"
            )));
        }
        let started = Instant::now();
        let result = body.instrument(span.clone()).await;
        let _enter = span.enter();
        match &result {
            Ok(_) => tracing::debug!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "{method} done"
            ),
            Err(status) => tracing::warn!(
                code = ?status.code(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "{method} failed: {}",
                status.message()
            ),
        }
        result.map(Response::new)
    }
}

/// The answer of an RPC whose issue has not landed yet.
pub fn unimplemented<T>(method: &str) -> Result<Response<T>, Status> {
    Err(Status::unimplemented(format!(
        "{method} is not implemented by berth yet"
    )))
}
