//! The one wrapper every RPC handler runs in.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;
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
    /// Runs `body` in `span`, refusing it with Unavailable while recovery runs, ending it with
    /// DeadlineExceeded when the caller's gRPC deadline passes, and logging a failure once with
    /// its code.
    pub(super) async fn rpc<T>(
        &self,
        metadata: &MetadataMap,
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
        let body = body.instrument(span.clone());
        let result = match grpc_timeout(metadata) {
            None => body.await,
            Some(timeout) => tokio::time::timeout(ahead_of(timeout), body)
                .await
                .unwrap_or_else(|_| {
                    Err(Status::deadline_exceeded(format!(
                        "{method}: the caller's deadline of {timeout:?} passed"
                    )))
                }),
        };
        self.svc.telemetry.record_rpc(
            method,
            result.as_ref().err().map_or(tonic::Code::Ok, Status::code),
            started.elapsed(),
        );
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

/// The `grpc-timeout` the caller sent: digits and a unit (H, M, S, m, u, n), per the gRPC spec.
fn grpc_timeout(metadata: &MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// tonic's own timer on the same deadline answers Cancelled when it fires; ending the call a
/// little earlier lets berth answer DeadlineExceeded, as the CRI expects.
fn ahead_of(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 20).min(Duration::from_millis(200)))
}

/// The trait impl of a CRI service: for each RPC its trait method, request and response types,
/// the name it is logged and counted under, its gate, the span it runs in (made from the
/// request) and the handler of its group it calls. Every method is the same few lines around
/// [`Cri::rpc`]; this writes them.
macro_rules! cri_service {
    (
        $service:path;
        $(type $stream:ident = $stream_ty:ty;)*
        $(
            fn $method:ident($req:ty) -> $resp:ty = $name:literal, $gate:ident,
                |$r:ident| $span:expr => $handler:ident;
        )*
    ) => {
        #[tonic::async_trait]
        impl $service for Cri {
            $(type $stream = $stream_ty;)*
            $(
                async fn $method(
                    &self,
                    req: tonic::Request<$req>,
                ) -> Result<tonic::Response<$resp>, tonic::Status> {
                    let (metadata, _, $r) = req.into_parts();
                    let span = $span;
                    self.rpc(&metadata, $name, Gate::$gate, span, self.$handler($r))
                        .await
                }
            )*
        }
    };
}
pub(super) use cri_service;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_in_every_unit() {
        let mut m = MetadataMap::new();
        for (text, want) in [
            ("2S", Duration::from_secs(2)),
            ("1500m", Duration::from_millis(1500)),
            ("1M", Duration::from_secs(60)),
            ("7u", Duration::from_micros(7)),
        ] {
            m.insert("grpc-timeout", text.parse().unwrap());
            assert_eq!(grpc_timeout(&m), Some(want), "{text}");
        }
        m.insert("grpc-timeout", "5x".parse().unwrap());
        assert_eq!(grpc_timeout(&m), None);
        assert!(ahead_of(Duration::from_secs(10)) < Duration::from_secs(10));
    }
}
