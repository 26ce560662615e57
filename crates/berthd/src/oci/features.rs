//! What an OCI runtime says it can do: its `features` subcommand (the OCI runtime-spec features
//! document), read once per handler. A runtime without the subcommand (runc before 1.1, crun
//! 1.8) can do none of what is asked here.

use std::time::Duration;

use serde::Deserialize;

use super::OciRuntime;

/// How long `features` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The abilities of a handler's runtime that change what berth may promise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuntimeFeatures {
    /// The `rro` mount option: a mount and all its submounts read-only.
    pub recursive_read_only: bool,
    /// Joining or making user namespaces (with uid/gid mappings).
    pub user_namespaces: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    mount_options: Vec<String>,
    #[serde(default)]
    linux: Option<LinuxFeatures>,
}

#[derive(Debug, Default, Deserialize)]
struct LinuxFeatures {
    #[serde(default)]
    namespaces: Vec<String>,
}

impl RuntimeFeatures {
    fn of(document: &Document) -> RuntimeFeatures {
        RuntimeFeatures {
            recursive_read_only: document.mount_options.iter().any(|o| o == "rro"),
            user_namespaces: document
                .linux
                .as_ref()
                .is_some_and(|l| l.namespaces.iter().any(|n| n == "user")),
        }
    }
}

impl OciRuntime {
    /// The runtime's features, asked once and then remembered.
    pub async fn features(&self) -> RuntimeFeatures {
        *self
            .features
            .get_or_init(|| async {
                let features = self.probe_features().await;
                tracing::info!(handler = %self.handler, ?features, "runtime features");
                features
            })
            .await
    }

    async fn probe_features(&self) -> RuntimeFeatures {
        let Ok(binary) = self.resolve() else {
            return RuntimeFeatures::default();
        };
        let run = tokio::process::Command::new(binary)
            .arg("features")
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(PROBE_TIMEOUT, run).await {
            Ok(Ok(out)) if out.status.success() => serde_json::from_slice(&out.stdout)
                .map(|d| RuntimeFeatures::of(&d))
                .unwrap_or_default(),
            _ => RuntimeFeatures::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rro_and_user_namespaces_come_from_the_document() {
        let doc: Document = serde_json::from_str(
            r#"{"ociVersionMin":"1.0.0","mountOptions":["ro","rro"],
                "linux":{"namespaces":["cgroup","ipc","mount","network","pid","user","uts"]}}"#,
        )
        .unwrap();
        assert_eq!(
            RuntimeFeatures::of(&doc),
            RuntimeFeatures {
                recursive_read_only: true,
                user_namespaces: true
            }
        );
        let bare: Document = serde_json::from_str(r#"{"mountOptions":["ro"]}"#).unwrap();
        assert_eq!(RuntimeFeatures::of(&bare), RuntimeFeatures::default());
    }
}
