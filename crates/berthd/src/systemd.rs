//! systemd's manager over D-Bus, for the systemd cgroup driver (kubelet's `cgroupDriver:
//! systemd`). With it, cgroups are systemd's units: berth asks for the slice of a pod that names
//! no parent (`berth-pod<id>.slice`, as kubelet asks for `kubepods-…-pod<uid>.slice`), sets a
//! pod slice's limits as unit properties (written to the files, systemd would put its own values
//! back at its next reload), and stops the slice with the pod. Containers' scopes are runc's: its
//! systemd driver talks to the same manager.

use std::time::Duration;

use futures_util::StreamExt;
use zbus::zvariant::{OwnedObjectPath, Value};

use crate::spec::ResourceLimits;

/// How long systemd may take to carry out one job.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("cannot reach systemd over D-Bus: {0}")]
    Connect(zbus::Error),
    #[error("systemd: {what} {unit}: {source}")]
    Call {
        what: &'static str,
        unit: String,
        source: zbus::Error,
    },
    #[error("systemd: {what} {unit}: the job ended `{result}`")]
    Job {
        what: &'static str,
        unit: String,
        result: String,
    },
    #[error("systemd: {what} {unit}: no answer within {JOB_TIMEOUT:?}")]
    Timeout { what: &'static str, unit: String },
}

impl SystemdError {
    /// systemd refused a property's value (a limit it does not take).
    pub fn refused_a_value(&self) -> bool {
        matches!(self, SystemdError::Call {
            source: zbus::Error::MethodError(name, _, _), ..
        } if name.as_str() == "org.freedesktop.DBus.Error.InvalidArgs")
    }
}

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1"
)]
trait Manager {
    fn subscribe(&self) -> zbus::Result<()>;

    fn start_transient_unit(
        &self,
        name: &str,
        mode: &str,
        properties: &[(&str, Value<'_>)],
        aux: &[(&str, &[(&str, Value<'_>)])],
    ) -> zbus::Result<OwnedObjectPath>;

    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    fn set_unit_properties(
        &self,
        name: &str,
        runtime: bool,
        properties: &[(&str, Value<'_>)],
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    fn job_removed(&self, id: u32, job: OwnedObjectPath, unit: String, result: String);
}

/// A unit property: its name and value (`t` numbers, `b` flags, `s` strings).
pub type Property = (&'static str, Value<'static>);

/// The manager, connected on first use (a node with the cgroupfs driver never connects).
#[derive(Debug, Default)]
pub struct Systemd {
    manager: tokio::sync::OnceCell<ManagerProxy<'static>>,
}

impl Systemd {
    async fn manager(&self) -> Result<&ManagerProxy<'static>, SystemdError> {
        self.manager
            .get_or_try_init(|| async {
                let connection = zbus::Connection::system()
                    .await
                    .map_err(SystemdError::Connect)?;
                let manager = ManagerProxy::new(&connection)
                    .await
                    .map_err(SystemdError::Connect)?;
                // Job signals come only to subscribers.
                manager.subscribe().await.map_err(SystemdError::Connect)?;
                Ok(manager)
            })
            .await
    }

    /// Starts slice `name` (a transient unit) with `limits`, and returns once systemd has made
    /// it. A slice that exists already is left as it is.
    pub async fn start_slice(&self, name: &str, limits: &[Property]) -> Result<(), SystemdError> {
        let mut properties: Vec<(&str, Value<'_>)> = vec![
            (
                "Description",
                Value::from(format!("berth pod slice {name}")),
            ),
            ("DefaultDependencies", Value::from(false)),
            ("CPUAccounting", Value::from(true)),
            ("MemoryAccounting", Value::from(true)),
            ("IOAccounting", Value::from(true)),
            ("TasksAccounting", Value::from(true)),
        ];
        properties.extend(limits.iter().map(|(k, v)| (*k, v.clone())));
        self.job(
            "starting",
            name,
            "org.freedesktop.systemd1.UnitExists",
            |manager| manager.start_transient_unit(name, "replace", &properties, &[]),
        )
        .await
    }

    /// Sets unit properties (limits) now and for as long as the unit lives.
    pub async fn set_properties(
        &self,
        name: &str,
        properties: &[Property],
    ) -> Result<(), SystemdError> {
        let props: Vec<(&str, Value<'_>)> =
            properties.iter().map(|(k, v)| (*k, v.clone())).collect();
        self.manager()
            .await?
            .set_unit_properties(name, true, &props)
            .await
            .map_err(|source| SystemdError::Call {
                what: "setting properties of",
                unit: name.to_owned(),
                source,
            })
    }

    /// Stops unit `name` and returns once it is gone; one systemd does not know is gone.
    pub async fn stop(&self, name: &str) -> Result<(), SystemdError> {
        self.job(
            "stopping",
            name,
            "org.freedesktop.systemd1.NoSuchUnit",
            |manager| manager.stop_unit(name, "replace"),
        )
        .await
    }

    /// Makes systemd a job for `unit` by `call`, and returns once systemd has carried it out.
    /// A call refused with the error `settled` found the unit already as asked: nothing to wait
    /// for. Job signals are received from before the call, so the job's end cannot be missed.
    async fn job<'m, Call, Job>(
        &'m self,
        what: &'static str,
        unit: &str,
        settled: &str,
        call: Call,
    ) -> Result<(), SystemdError>
    where
        Call: FnOnce(&'m ManagerProxy<'static>) -> Job,
        Job: Future<Output = zbus::Result<OwnedObjectPath>>,
    {
        let manager = self.manager().await?;
        let failed = |source| SystemdError::Call {
            what,
            unit: unit.to_owned(),
            source,
        };
        let mut removed = manager.receive_job_removed().await.map_err(failed)?;
        let job = match call(manager).await {
            Ok(job) => job,
            Err(zbus::Error::MethodError(error, _, _)) if error.as_str() == settled => {
                return Ok(());
            }
            Err(e) => return Err(failed(e)),
        };
        wait_job(&mut removed, &job, what, unit).await
    }
}

async fn wait_job(
    removed: &mut JobRemovedStream,
    job: &OwnedObjectPath,
    what: &'static str,
    unit: &str,
) -> Result<(), SystemdError> {
    let done = async {
        while let Some(signal) = removed.next().await {
            let Ok(args) = signal.args() else {
                continue;
            };
            if args.job == *job {
                return Some(args.result);
            }
        }
        None
    };
    match tokio::time::timeout(JOB_TIMEOUT, done).await {
        Ok(Some(result)) if result == "done" => Ok(()),
        Ok(Some(result)) => Err(SystemdError::Job {
            what,
            unit: unit.to_owned(),
            result,
        }),
        Ok(None) | Err(_) => Err(SystemdError::Timeout {
            what,
            unit: unit.to_owned(),
        }),
    }
}

/// The unit properties of CPU and memory limits, as systemd and kubelet's systemd driver name
/// them: shares become a weight (cgroup v2's conversion), the CFS quota a quota per second of
/// its period. Zero means "not set", as in the CRI: such a limit is left out.
pub fn limit_properties(limits: &ResourceLimits) -> Vec<Property> {
    let mut props: Vec<Property> = Vec::new();
    if limits.cpu_shares > 0 {
        let weight = crate::cgroup_limits::shares_to_weight(limits.cpu_shares) as u64;
        props.push(("CPUWeight", Value::from(weight)));
    }
    let period = u64::try_from(limits.cpu_period).ok().filter(|p| *p > 0);
    if let Some(period) = period {
        props.push(("CPUQuotaPeriodUSec", Value::from(period)));
    }
    if limits.cpu_quota > 0 {
        // systemd keeps whole hundredths of a CPU: round up, as runc does.
        let usec = (limits.cpu_quota as u64).saturating_mul(1_000_000) / period.unwrap_or(100_000);
        props.push((
            "CPUQuotaPerSecUSec",
            Value::from(usec.div_ceil(10_000) * 10_000),
        ));
    }
    if limits.memory_limit_in_bytes > 0 {
        props.push((
            "MemoryMax",
            Value::from(limits.memory_limit_in_bytes as u64),
        ));
    }
    props
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_become_systemds_properties() {
        let limits = ResourceLimits {
            cpu_shares: 512,
            cpu_quota: 50_000,
            cpu_period: 100_000,
            memory_limit_in_bytes: 256 << 20,
            ..ResourceLimits::default()
        };
        let props = limit_properties(&limits);
        let get = |k: &str| {
            props
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("CPUWeight"), Some(Value::from(20u64)));
        assert_eq!(get("CPUQuotaPeriodUSec"), Some(Value::from(100_000u64)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Value::from(500_000u64)));
        assert_eq!(get("MemoryMax"), Some(Value::from(256u64 << 20)));
        assert!(limit_properties(&ResourceLimits::default()).is_empty());
    }
}
