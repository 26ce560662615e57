//! Exec, Attach and PortForward: check the request, keep it under a single-use token, answer the
//! URL of the streaming server that serves it.

use berth_cri::v1 as cri;
use berth_stream::tokens::TokenError;
use berth_stream::{Request, StreamOpts};
use tonic::Status;

use super::Cri;
use crate::container::ContainerState;
use crate::pod::PodState;

impl Cri {
    fn url_for(&self, request: Request) -> Result<String, Status> {
        let server = self
            .svc
            .streaming()
            .ok_or_else(|| Status::unavailable("the streaming server is not running"))?;
        server.url_for(request).map_err(|e| match e {
            TokenError::Full => Status::resource_exhausted(e.to_string()),
            TokenError::Random(_) => Status::internal(e.to_string()),
        })
    }

    /// The checks upstream's streaming library makes, then the container's state; the
    /// container's full ID (the request may name a prefix).
    fn running_container(&self, container_id: &str, opts: &StreamOpts) -> Result<String, Status> {
        if container_id.is_empty() {
            return Err(Status::invalid_argument("missing required container_id"));
        }
        if opts.tty && opts.stderr {
            return Err(Status::invalid_argument(
                "tty and stderr cannot both be true",
            ));
        }
        if !(opts.stdin || opts.stdout || opts.stderr) {
            return Err(Status::invalid_argument(
                "one of stdin, stdout, or stderr must be set",
            ));
        }
        let (id, state) = self
            .svc
            .containers
            .get(container_id)?
            .with(|r| (r.id.clone(), r.state));
        if state != ContainerState::Running {
            return Err(Status::failed_precondition(format!(
                "container {id} is {state:?}, not running"
            )));
        }
        Ok(id)
    }

    pub(super) async fn exec_of(&self, req: cri::ExecRequest) -> Result<cri::ExecResponse, Status> {
        if req.cmd.is_empty() {
            return Err(Status::invalid_argument("Exec needs a command"));
        }
        let opts = streams(req.tty, req.stdin, req.stdout, req.stderr);
        let container_id = self.running_container(&req.container_id, &opts)?;
        let url = self.url_for(Request::Exec {
            container_id,
            cmd: super::fields::process_args("cmd", req.cmd)?,
            opts,
        })?;
        Ok(cri::ExecResponse { url })
    }

    pub(super) async fn attach_of(
        &self,
        req: cri::AttachRequest,
    ) -> Result<cri::AttachResponse, Status> {
        let opts = streams(req.tty, req.stdin, req.stdout, req.stderr);
        let container_id = self.running_container(&req.container_id, &opts)?;
        let url = self.url_for(Request::Attach { container_id, opts })?;
        Ok(cri::AttachResponse { url })
    }

    pub(super) async fn port_forward_of(
        &self,
        req: cri::PortForwardRequest,
    ) -> Result<cri::PortForwardResponse, Status> {
        if req.pod_sandbox_id.is_empty() {
            return Err(Status::invalid_argument("missing required pod_sandbox_id"));
        }
        let record = self.svc.pods.get(&req.pod_sandbox_id)?.record();
        if record.state != PodState::Ready {
            return Err(Status::failed_precondition(format!(
                "pod sandbox {} is not ready",
                record.id
            )));
        }
        let ports =
            req.port
                .iter()
                .map(|p| {
                    u16::try_from(*p).ok().filter(|p| *p > 0).ok_or_else(|| {
                        Status::invalid_argument(format!("port {p} is not a TCP port"))
                    })
                })
                .collect::<Result<Vec<u16>, Status>>()?;
        let url = self.url_for(Request::PortForward {
            pod_sandbox_id: record.id,
            ports,
        })?;
        Ok(cri::PortForwardResponse { url })
    }
}

/// The standard streams a session asks for.
fn streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> StreamOpts {
    StreamOpts {
        tty,
        stdin,
        stdout,
        stderr,
    }
}
