//! The one wrapper every RPC handler runs in.

use std::fmt::{self, Write};
use std::future::Future;
use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;
use tonic::{Response, Status};
use tracing::Instrument;

use super::Cri;

/// The most of a status message that is sent and logged. Messages quote the request, whose
/// strings may be a megabyte long: an h2 client refuses a trailer that takes that many frames
/// (and closes the connection, failing every call on it), and a log wants no such line.
const MAX_MESSAGE_CHARS: usize = 4096;
/// The most of a request's ID or name that its span shows.
const MAX_FIELD_CHARS: usize = 256;

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
        let result = result.map_err(bounded);
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

/// `status` with its message cut to [`MAX_MESSAGE_CHARS`].
fn bounded(status: Status) -> Status {
    let message = status.message();
    match message.char_indices().nth(MAX_MESSAGE_CHARS) {
        None => status,
        Some((end, _)) => Status::new(
            status.code(),
            format!("{}… ({} bytes in all)", &message[..end], message.len()),
        ),
    }
}

/// A request's string as a span shows it: control characters escaped (so that no request can
/// write a line of the log), at most [`MAX_FIELD_CHARS`] of it.
pub(super) struct Shown<'a>(&'a str);

pub(super) fn shown(text: &str) -> Shown<'_> {
    Shown(text)
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars().take(MAX_FIELD_CHARS) {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        if self.0.chars().nth(MAX_FIELD_CHARS).is_some() {
            write!(f, "… ({} bytes)", self.0.len())?;
        }
        Ok(())
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

    #[test]
    fn huge_messages_and_fields_are_cut_and_control_characters_escaped() {
        let long = "é".repeat(MAX_MESSAGE_CHARS * 2);
        let cut = bounded(Status::invalid_argument(long.clone()));
        assert_eq!(cut.code(), tonic::Code::InvalidArgument);
        assert!(cut.message().len() < long.len());
        assert!(
            cut.message()
                .ends_with(&format!("({} bytes in all)", long.len()))
        );
        assert_eq!(bounded(Status::not_found("short")).message(), "short");
        assert_eq!(shown("a\nb").to_string(), "a\\nb");
        let field = shown(&"x".repeat(1 << 20)).to_string();
        assert!(
            field.len() < 300 && field.ends_with("(1048576 bytes)"),
            "{field}"
        );
    }
}
