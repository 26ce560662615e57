//! Checks of request fields that become C strings for the kernel: process arguments, environment
//! variables and paths. A NUL ends a C string and `execve` refuses a string over
//! `MAX_ARG_STRLEN`; both are the request's fault and are answered with InvalidArgument naming
//! the field, before anything is made.

use berth_cri::v1 as cri;
use tonic::Status;

/// The longest single argument or `NAME=value` string `execve` takes (Linux's
/// `MAX_ARG_STRLEN`, 32 pages, its NUL included).
const MAX_ARG_BYTES: usize = 32 * 4096 - 1;

/// Arguments as a process gets them.
pub(super) fn process_args(field: &str, args: Vec<String>) -> Result<Vec<String>, Status> {
    for (n, arg) in args.iter().enumerate() {
        if arg.contains('\0') {
            return Err(Status::invalid_argument(format!(
                "{field}[{n}] holds a NUL byte, which no process argument can"
            )));
        }
        if arg.len() > MAX_ARG_BYTES {
            return Err(Status::invalid_argument(format!(
                "{field}[{n}] is {} bytes long; a process argument can be {MAX_ARG_BYTES}",
                arg.len()
            )));
        }
    }
    Ok(args)
}

/// An environment variable: a name without `=` or NUL, a value without NUL (the bytes may be
/// anything else), the two together no longer than one argument can be.
pub(super) fn env_var(kv: cri::KeyValue) -> Result<(String, Vec<u8>), Status> {
    if kv.key.is_empty() || kv.key.contains(['=', '\0']) {
        return Err(Status::invalid_argument(format!(
            "envs: `{}` is not a variable name (empty, or with `=` or NUL)",
            kv.key.escape_debug()
        )));
    }
    if kv.value.contains(&0) {
        return Err(Status::invalid_argument(format!(
            "envs: the value of {} holds a NUL byte",
            kv.key
        )));
    }
    if kv.key.len() + 1 + kv.value.len() > MAX_ARG_BYTES {
        return Err(Status::invalid_argument(format!(
            "envs: {} is longer than a process's variable can be ({MAX_ARG_BYTES} bytes)",
            kv.key
        )));
    }
    Ok((kv.key, kv.value))
}

/// A path or name the kernel will be given: no NUL.
pub(super) fn c_string<'a>(field: &str, value: &'a str) -> Result<&'a str, Status> {
    if value.contains('\0') {
        Err(Status::invalid_argument(format!(
            "{field} `{}` holds a NUL byte",
            value.escape_debug()
        )))
    } else {
        Ok(value)
    }
}
