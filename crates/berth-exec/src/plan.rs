//! The plan of the native path: everything the helper needs to start a process in a running
//! container as the runtime would, with nothing left to look up in files the container can
//! touch. berthd writes it once per container (from the bundle's config.json, the runtime's
//! state and the compiled seccomp filter, see berthd's `exec` module); the helper reads it at
//! each exec. JSON, written atomically, root's alone.

use std::path::PathBuf;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The plan's format; a helper refuses any other.
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecPlan {
    pub version: u32,
    /// The container's ID: the process's session keyring is named after it, as runc names its
    /// init's (`_ses.<id>`).
    pub container_id: String,
    /// The container's init process, whose namespaces the process joins.
    pub init: InitProcess,
    /// The cgroup directories the process joins: one per v1 hierarchy, or the v2 one.
    pub cgroups: Vec<PathBuf>,
    pub process: ProcessPlan,
    /// The container's seccomp filter, compiled; None when it has none.
    pub seccomp: Option<SeccompPlan>,
}

/// A process as the node sees it, told from any later process with its PID by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitProcess {
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot.
    pub start_time: u64,
}

/// The process settings of the container's config.json that an exec'd process gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessPlan {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// `KEY=value` entries, in order (a later duplicate wins).
    pub env: Vec<String>,
    pub cwd: String,
    pub capabilities: CapabilitySets,
    pub no_new_privileges: bool,
    pub oom_score_adj: Option<i32>,
    /// The AppArmor profile the process execs into, where the node has AppArmor.
    pub apparmor_profile: Option<String>,
}

/// Bit masks (bit n is capability n).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilitySets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// A classic BPF program for `seccomp(SECCOMP_SET_MODE_FILTER)`, and the filter flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompPlan {
    /// The instructions as the kernel reads them (`struct sock_filter`, 8 bytes each, in the
    /// node's byte order), base64.
    program: String,
    pub flags: u32,
}

/// One BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

impl Instruction {
    const SIZE: usize = 8;

    fn to_bytes(self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..2].copy_from_slice(&self.code.to_ne_bytes());
        b[2] = self.jt;
        b[3] = self.jf;
        b[4..].copy_from_slice(&self.k.to_ne_bytes());
        b
    }

    fn from_bytes(b: &[u8]) -> Instruction {
        Instruction {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the seccomp program is not whole BPF instructions in base64")]
    BadProgram,
    #[error("the seccomp program has {0} instructions, more than the kernel takes (4096)")]
    ProgramTooLong(usize),
}

impl SeccompPlan {
    /// The kernel's limit on a filter's length.
    pub const MAX_INSTRUCTIONS: usize = 4096;

    pub fn new(instructions: &[Instruction], flags: u32) -> Result<SeccompPlan, PlanError> {
        if instructions.len() > Self::MAX_INSTRUCTIONS {
            return Err(PlanError::ProgramTooLong(instructions.len()));
        }
        let bytes: Vec<u8> = instructions.iter().flat_map(|i| i.to_bytes()).collect();
        Ok(SeccompPlan {
            program: base64::engine::general_purpose::STANDARD.encode(bytes),
            flags,
        })
    }

    pub fn instructions(&self) -> Result<Vec<Instruction>, PlanError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.program)
            .map_err(|_| PlanError::BadProgram)?;
        if bytes.len() % Instruction::SIZE != 0 {
            return Err(PlanError::BadProgram);
        }
        let count = bytes.len() / Instruction::SIZE;
        if count > Self::MAX_INSTRUCTIONS {
            return Err(PlanError::ProgramTooLong(count));
        }
        Ok(bytes
            .chunks_exact(Instruction::SIZE)
            .map(Instruction::from_bytes)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn programs_round_trip_and_bad_ones_are_refused() {
        let program = [
            Instruction {
                code: 0x20,
                jt: 0,
                jf: 0,
                k: 4,
            },
            Instruction {
                code: 0x15,
                jt: 1,
                jf: 0,
                k: 0xc000_003e,
            },
            Instruction {
                code: 0x06,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            },
        ];
        let plan = SeccompPlan::new(&program, 4).unwrap();
        assert_eq!(plan.instructions().unwrap(), program);
        let json = serde_json::to_string(&plan).unwrap();
        let back: SeccompPlan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, plan);
        let torn = SeccompPlan {
            program: "AAAA".into(),
            flags: 0,
        };
        assert_eq!(torn.instructions(), Err(PlanError::BadProgram));
        let long = vec![program[2]; SeccompPlan::MAX_INSTRUCTIONS + 1];
        assert_eq!(
            SeccompPlan::new(&long, 0),
            Err(PlanError::ProgramTooLong(SeccompPlan::MAX_INSTRUCTIONS + 1))
        );
    }
}
