//! berth's streaming server: the SPDY/3.1 and WebSocket transports of exec, attach and
//! port-forward (see shared/streaming.md). It knows nothing of containers: a [`Backend`] gives it
//! processes to talk to and sockets to forward to.

pub mod backend;
pub mod listener;
pub mod portforward;
pub mod remotecommand;
pub mod server;
pub mod spdy;
pub mod status;
pub mod tokens;
pub mod websocket;

#[cfg(test)]
mod fuzz_tests;

pub use backend::{
    Backend, BackendError, BoxFuture, Connection, Exit, ProcessIo, Request, StreamOpts,
};
pub use server::{ServerConfig, ServerError, StreamServer};
