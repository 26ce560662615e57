//! The remotecommand error stream's payload: a metav1.Status as JSON for v4 and later, the bare
//! message for older protocols (where a success writes nothing).

use serde_json::json;

use crate::backend::Exit;

/// What to write on the error stream at the end of a session; None writes nothing.
pub fn error_payload(exit: &Exit, json_status: bool) -> Option<Vec<u8>> {
    let (message, status) = match exit {
        Exit::Code(0) | Exit::Detached => (None, json!({"metadata": {}, "status": "Success"})),
        Exit::Code(code) => {
            // client-go parses the cause as a u8.
            let code = (*code).clamp(0, 255);
            let message = format!("command terminated with non-zero exit code: exit status {code}");
            (
                Some(message.clone()),
                json!({
                    "metadata": {},
                    "status": "Failure",
                    "message": message,
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
                }),
            )
        }
        Exit::Failed(err) => {
            let cause = format!("error executing command in container: {err}");
            (
                Some(format!("Internal error occurred: {cause}")),
                json!({
                    "metadata": {},
                    "status": "Failure",
                    "message": format!("Internal error occurred: {cause}"),
                    "reason": "InternalError",
                    "details": {"causes": [{"message": cause}]},
                    "code": 500,
                }),
            )
        }
    };
    if json_status {
        Some(status.to_string().into_bytes())
    } else {
        message.map(String::into_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(exit: Exit, json: bool) -> Option<String> {
        error_payload(&exit, json).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn v4_statuses() {
        assert_eq!(
            text(Exit::Code(0), true).unwrap(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let three: serde_json::Value =
            serde_json::from_str(&text(Exit::Code(3), true).unwrap()).unwrap();
        assert_eq!(three["reason"], "NonZeroExitCode");
        assert_eq!(
            three["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        let failed: serde_json::Value =
            serde_json::from_str(&text(Exit::Failed("boom".into()), true).unwrap()).unwrap();
        assert_eq!(
            (failed["reason"].as_str(), failed["code"].as_i64()),
            (Some("InternalError"), Some(500))
        );
    }

    #[test]
    fn older_protocols_write_only_failures_as_text() {
        assert_eq!(text(Exit::Code(0), false), None);
        assert!(
            text(Exit::Code(7), false)
                .unwrap()
                .contains("non-zero exit code")
        );
    }
}
