//! A container's exec plan (`berth_exec::plan`): built the first time the container is exec'd
//! into, from the config.json berthd wrote for it and the state its runtime (runc) keeps, and
//! kept in its state dir (tmpfs, root's alone) for every exec after. Nothing in it changes while
//! the container lives: a container runs once, and UpdateContainerResources changes its cgroups'
//! limits, not which cgroups they are.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::seccomp::{self, SeccompCompileError};
use crate::oci::OciRuntime;
use crate::oci::runc_state::{RuncState, StateError};
use crate::spec::oci;
use berth_exec::plan::{CapabilitySets, ExecPlan, InitProcess, ProcessPlan};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Not a state berth can read (not runc's, or none): the runtime's exec does it.
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Seccomp(#[from] SeccompCompileError),
    #[error("the container's config.json: {0}")]
    Config(String),
    #[error("writing the exec plan {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl PlanError {
    /// Whether the runtime's own exec can still run the process.
    pub fn needs_runtime(&self) -> bool {
        matches!(
            self,
            PlanError::State(_) | PlanError::Seccomp(SeccompCompileError::NeedsRuntime(_))
        )
    }
}

/// Where a container's files are, for its plan.
#[derive(Debug, Clone)]
pub struct PlanSources {
    pub container_id: String,
    /// The bundle's config.json.
    pub config: PathBuf,
    /// The container's runtime, whose state names its init and cgroups.
    pub runtime: OciRuntime,
    /// Where the plan is kept.
    pub plan: PathBuf,
}

/// The plan's path, built and written first if it is not there yet. Blocking.
pub fn ensure(sources: &PlanSources) -> Result<PathBuf, PlanError> {
    if sources.plan.is_file() {
        return Ok(sources.plan.clone());
    }
    let plan = build(sources)?;
    write(&sources.plan, &plan)?;
    Ok(sources.plan.clone())
}

fn build(sources: &PlanSources) -> Result<ExecPlan, PlanError> {
    let state = RuncState::read(&sources.runtime, &sources.container_id)?;
    let config_text = std::fs::read(&sources.config)
        .map_err(|e| PlanError::Config(format!("{}: {e}", sources.config.display())))?;
    let spec: oci::Spec =
        serde_json::from_slice(&config_text).map_err(|e| PlanError::Config(e.to_string()))?;
    let seccomp = spec
        .linux
        .seccomp
        .as_ref()
        .map(seccomp::compile)
        .transpose()?;
    Ok(ExecPlan {
        version: berth_exec::plan::VERSION,
        container_id: sources.container_id.clone(),
        init: InitProcess {
            pid: state.init_process_pid,
            start_time: state.init_process_start,
        },
        cgroups: state.cgroup_dirs(),
        process: process_plan(&spec.process)?,
        seccomp,
    })
}

fn process_plan(process: &oci::Process) -> Result<ProcessPlan, PlanError> {
    let capabilities = match &process.capabilities {
        Some(caps) => {
            let mask = |names: &Vec<String>| {
                let (mask, unknown) = berth_exec::caps::mask(names);
                for name in unknown {
                    tracing::warn!("exec plan: unknown capability {name} skipped");
                }
                mask
            };
            CapabilitySets {
                bounding: mask(&caps.bounding),
                effective: mask(&caps.effective),
                permitted: mask(&caps.permitted),
                inheritable: mask(&caps.inheritable),
                ambient: mask(&caps.ambient),
            }
        }
        None => CapabilitySets::default(),
    };
    let oom_score_adj = process
        .oom_score_adj
        .map(i32::try_from)
        .transpose()
        .map_err(|_| PlanError::Config("oomScoreAdj out of range".into()))?;
    Ok(ProcessPlan {
        uid: process.user.uid,
        gid: process.user.gid,
        additional_gids: process.user.additional_gids.clone(),
        env: process.env.clone(),
        cwd: process.cwd.clone(),
        capabilities,
        no_new_privileges: process.no_new_privileges,
        oom_score_adj,
        apparmor_profile: process.apparmor_profile.clone(),
    })
}

/// Written beside its final name and renamed (two first execs at once write the same plan).
fn write(path: &Path, plan: &ExecPlan) -> Result<(), PlanError> {
    let failed = |source| PlanError::Write {
        path: path.display().to_string(),
        source,
    };
    let bytes = serde_json::to_vec(plan).map_err(|e| failed(std::io::Error::other(e)))?;
    let mut temp = path.as_os_str().to_owned();
    temp.push(format!(".{}", crate::ids::new_id()));
    let temp = PathBuf::from(temp);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| f.write_all(&bytes))
        .and_then(|()| std::fs::rename(&temp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(failed)
}
