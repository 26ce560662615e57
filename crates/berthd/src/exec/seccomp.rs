//! A container's seccomp profile (the `linux.seccomp` of its config.json) compiled to the BPF
//! program the native exec path installs, as runc compiles it for `runc exec`: by libseccomp,
//! with the same rules (names libseccomp does not know are skipped, rules whose action is the
//! default one are dropped, conditions on one argument become separate rules), and with runc's
//! ENOSYS stub in front: a system call newer than every one the profile names gets ENOSYS rather
//! than the default action, so that a libc trying a new call falls back to an older one.

use std::io::{Read, Seek};
use std::str::FromStr;

use berth_exec::plan::{Instruction, SeccompPlan};
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum SeccompCompileError {
    /// Something the native path does not do (a notify listener): the runtime's exec does it.
    #[error("the seccomp profile needs the runtime's exec: {0}")]
    NeedsRuntime(String),
    #[error("the seccomp profile cannot be compiled: {0}")]
    Invalid(String),
}

/// The OCI `LinuxSeccomp` object, the parts runc uses.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: String,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    listener_path: String,
    #[serde(default)]
    syscalls: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    names: Vec<String>,
    action: String,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Arg>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: u32,
    value: u64,
    #[serde(default)]
    value_two: u64,
    op: String,
}

const EPERM: u32 = 1;
const ENOSYS: u32 = 38;

/// Compiles `profile` (blocking: libseccomp takes milliseconds).
pub fn compile(profile: &serde_json::Value) -> Result<SeccompPlan, SeccompCompileError> {
    let profile: Profile = serde_json::from_value(profile.clone()).map_err(invalid)?;
    if !profile.listener_path.is_empty() {
        return Err(SeccompCompileError::NeedsRuntime(
            "a notify listener".into(),
        ));
    }
    let default = action(&profile.default_action, profile.default_errno_ret)?;
    let mut filter = ScmpFilterContext::new(default).map_err(invalid)?;
    let arches = arches(&profile.architectures)?;
    for arch in &arches {
        filter.add_arch(*arch).map_err(invalid)?;
    }
    for rule in &profile.syscalls {
        let rule_action = action(&rule.action, rule.errno_ret)?;
        if rule_action == default {
            continue;
        }
        let conditions = conditions(&rule.args)?;
        for name in &rule.names {
            // Unknown to libseccomp: runc skips it too.
            let Ok(call) = ScmpSyscall::from_name(name) else {
                continue;
            };
            for set in &conditions {
                filter
                    .add_rule_conditional(rule_action, call, set)
                    .map_err(|e| invalid(format!("{name}: {e}")))?;
            }
        }
    }
    let mut program = export(&filter)?;
    if !allows(default) {
        let names = profile.syscalls.iter().flat_map(|r| r.names.iter());
        let mut stub = enosys_stub(&arches, names);
        stub.extend(program);
        program = stub;
    }
    SeccompPlan::new(&program, flags(&profile.flags)).map_err(invalid)
}

fn invalid(e: impl std::fmt::Display) -> SeccompCompileError {
    SeccompCompileError::Invalid(e.to_string())
}

fn action(name: &str, errno: Option<u32>) -> Result<ScmpAction, SeccompCompileError> {
    let errno = i32::try_from(errno.unwrap_or(EPERM)).map_err(invalid)?;
    Ok(match name {
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno),
        "SCMP_ACT_TRACE" => ScmpAction::Trace(u16::try_from(errno).map_err(invalid)?),
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_NOTIFY" => {
            return Err(SeccompCompileError::NeedsRuntime("SCMP_ACT_NOTIFY".into()));
        }
        other => return Err(invalid(format!("unknown action {other}"))),
    })
}

/// Actions after which runc adds no ENOSYS stub: a new call is let through anyway.
fn allows(action: ScmpAction) -> bool {
    matches!(
        action,
        ScmpAction::Allow | ScmpAction::Log | ScmpAction::Trace(_)
    )
}

fn arches(names: &[String]) -> Result<Vec<ScmpArch>, SeccompCompileError> {
    let mut arches = names
        .iter()
        .map(|n| ScmpArch::from_str(n).map_err(|e| invalid(format!("{n}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    if arches.is_empty() {
        arches.push(ScmpArch::native());
    }
    Ok(arches)
}

/// The sets of conditions one rule stands for: all in one set, unless two name the same
/// argument (libseccomp takes one comparison per argument), then one set per condition, as runc
/// does.
fn conditions(args: &[Arg]) -> Result<Vec<Vec<ScmpArgCompare>>, SeccompCompileError> {
    let compares =
        args.iter()
            .map(|a| {
                let op = match a.op.as_str() {
                    "SCMP_CMP_MASKED_EQ" => ScmpCompareOp::MaskedEqual(a.value),
                    other => ScmpCompareOp::from_str(other)
                        .map_err(|e| invalid(format!("{other}: {e}")))?,
                };
                let datum = if matches!(op, ScmpCompareOp::MaskedEqual(_)) {
                    a.value_two
                } else {
                    a.value
                };
                Ok(ScmpArgCompare::new(a.index, op, datum))
            })
            .collect::<Result<Vec<_>, SeccompCompileError>>()?;
    let mut indexes: Vec<u32> = args.iter().map(|a| a.index).collect();
    indexes.sort_unstable();
    indexes.dedup();
    Ok(if indexes.len() < args.len() {
        compares.into_iter().map(|c| vec![c]).collect()
    } else {
        vec![compares]
    })
}

fn flags(names: &[String]) -> u32 {
    names
        .iter()
        .map(|f| match f.as_str() {
            "SECCOMP_FILTER_FLAG_LOG" => 1 << 1,
            "SECCOMP_FILTER_FLAG_SPEC_ALLOW" => 1 << 2,
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" => 1 << 5,
            // TSYNC: the process has one thread when the filter goes on.
            _ => 0,
        })
        .fold(0, |all, f| all | f)
}

fn export(filter: &ScmpFilterContext) -> Result<Vec<Instruction>, SeccompCompileError> {
    let memfd = rustix::fs::memfd_create("berth-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(invalid)?;
    filter.export_bpf(&memfd).map_err(invalid)?;
    let mut file = std::fs::File::from(memfd);
    file.rewind().map_err(invalid)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(invalid)?;
    if bytes.len() % 8 != 0 {
        return Err(invalid("libseccomp exported a torn program"));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|b| Instruction {
            code: u16::from_ne_bytes([b[0], b[1]]),
            jt: b[2],
            jf: b[3],
            k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
        .collect())
}

// Classic BPF, as seccomp reads `struct seccomp_data` (nr at 0, arch at 4).
const LD_ABS_W: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGT_K: u16 = 0x25;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const RET_ERRNO: u32 = 0x0005_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
const AUDIT_ARCH_AARCH64: u32 = 0xc000_00b7;
const AUDIT_ARCH_ARM: u32 = 0x4000_0028;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// Where a stub instruction jumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Next,
    /// Past the next n instructions.
    Skip(usize),
    Section(usize),
    Enosys,
    Main,
}

/// The stub in front of libseccomp's program: per architecture of the profile that the stub
/// knows, a call numbered above every call the profile names gets ENOSYS; everything else goes
/// on to the program. (x32 calls carry a bit of their own on the x86_64 architecture.)
fn enosys_stub<'a>(
    arches: &[ScmpArch],
    names: impl Iterator<Item = &'a String> + Clone,
) -> Vec<Instruction> {
    let highest = |arch: ScmpArch| {
        names
            .clone()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .map(i32::from)
            .filter(|nr| *nr >= 0)
            .max()
            .map(|nr| nr as u32)
    };
    let x32 = arches
        .contains(&ScmpArch::X32)
        .then(|| highest(ScmpArch::X32))
        .flatten();
    // (audit arch, highest call, x32's highest for x86_64)
    let mut sections: Vec<(u32, u32, Option<u32>)> = Vec::new();
    for arch in arches {
        let audit = match arch {
            ScmpArch::X8664 => AUDIT_ARCH_X86_64,
            ScmpArch::X86 => AUDIT_ARCH_I386,
            ScmpArch::Aarch64 => AUDIT_ARCH_AARCH64,
            ScmpArch::Arm => AUDIT_ARCH_ARM,
            _ => continue,
        };
        if let Some(max) = highest(*arch) {
            sections.push((
                audit,
                max,
                (audit == AUDIT_ARCH_X86_64).then_some(x32).flatten(),
            ));
        }
    }
    if sections.is_empty() {
        return Vec::new();
    }
    // Instructions with symbolic targets: (code, k, jt, jf).
    let mut ops: Vec<(u16, u32, Target, Target)> =
        vec![(LD_ABS_W, OFFSET_ARCH, Target::Next, Target::Next)];
    for (i, (audit, _, _)) in sections.iter().enumerate() {
        ops.push((JMP_JEQ_K, *audit, Target::Section(i), Target::Next));
    }
    ops.push((JMP_JA, 0, Target::Main, Target::Main));
    let mut starts = Vec::new();
    for (audit, max, x32_max) in &sections {
        starts.push(ops.len());
        ops.push((LD_ABS_W, OFFSET_NR, Target::Next, Target::Next));
        if *audit == AUDIT_ARCH_X86_64 {
            match x32_max {
                // An x32 call: above x32's highest is ENOSYS; a native call skips that test.
                Some(x32_max) => {
                    ops.push((JMP_JSET_K, X32_SYSCALL_BIT, Target::Next, Target::Skip(1)));
                    ops.push((JMP_JGT_K, *x32_max, Target::Enosys, Target::Main));
                }
                // x32 is not in the profile: libseccomp's program decides about its calls.
                None => ops.push((JMP_JSET_K, X32_SYSCALL_BIT, Target::Main, Target::Next)),
            }
        }
        ops.push((JMP_JGT_K, *max, Target::Enosys, Target::Main));
    }
    let enosys = ops.len();
    ops.push((RET_K, RET_ERRNO | ENOSYS, Target::Next, Target::Next));
    let main = ops.len();
    let resolve = |pc: usize, target: Target| -> usize {
        match target {
            Target::Next => pc + 1,
            Target::Skip(n) => pc + 1 + n,
            Target::Section(i) => starts[i],
            Target::Enosys => enosys,
            Target::Main => main,
        }
    };
    ops.iter()
        .enumerate()
        .map(|(pc, &(code, k, jt, jf))| {
            let offset = |t| (resolve(pc, t) - pc - 1) as u32;
            if code == JMP_JA {
                Instruction {
                    code,
                    jt: 0,
                    jf: 0,
                    k: offset(jt),
                }
            } else if code & 0x07 == 0x05 {
                // The stub is a few dozen instructions: every offset fits a byte.
                Instruction {
                    code,
                    jt: offset(jt) as u8,
                    jf: offset(jf) as u8,
                    k,
                }
            } else {
                Instruction {
                    code,
                    jt: 0,
                    jf: 0,
                    k,
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    const EPERM_RET: u32 = RET_ERRNO | EPERM;
    const ENOSYS_RET: u32 = RET_ERRNO | ENOSYS;
    const ALLOW_RET: u32 = 0x7fff_0000;

    /// Runs a classic BPF program over one `struct seccomp_data` (the subset of BPF libseccomp
    /// and the stub emit); panics on anything else.
    fn run(program: &[Instruction], arch: u32, nr: u32, args: [u64; 6]) -> u32 {
        let word = |offset: u32| -> u32 {
            match offset {
                0 => nr,
                4 => arch,
                8 | 12 => 0,
                o if (16..64).contains(&o) => {
                    let arg = args[((o - 16) / 8) as usize];
                    if (o - 16) % 8 == 0 {
                        arg as u32
                    } else {
                        (arg >> 32) as u32
                    }
                }
                o => panic!("load at {o}"),
            }
        };
        let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
        loop {
            let i = program[pc];
            pc += 1;
            let jump = |taken: bool| if taken { i.jt as usize } else { i.jf as usize };
            match i.code {
                0x20 => a = word(i.k),
                0x00 => a = i.k,
                0x01 => x = i.k,
                0x02 => mem[i.k as usize] = a,
                0x60 => a = mem[i.k as usize],
                0x61 => x = mem[i.k as usize],
                0x07 => x = a,
                0x87 => a = x,
                0x54 => a &= i.k,
                0x05 => pc += i.k as usize,
                0x15 => pc += jump(a == i.k),
                0x25 => pc += jump(a > i.k),
                0x35 => pc += jump(a >= i.k),
                0x45 => pc += jump(a & i.k != 0),
                0x1d => pc += jump(a == x),
                0x2d => pc += jump(a > x),
                0x3d => pc += jump(a >= x),
                0x06 => return i.k,
                0x16 => return a,
                other => panic!("opcode {other:#x} at {}", pc - 1),
            }
        }
    }

    fn nr(name: &str, arch: ScmpArch) -> u32 {
        i32::from(ScmpSyscall::from_name_by_arch(name, arch).unwrap()) as u32
    }

    #[test]
    fn the_default_profile_allows_refuses_and_answers_new_calls_enosys() {
        let profile = crate::spec::seccomp::runtime_default(&["CAP_CHOWN".into()]);
        let program = compile(&profile).unwrap().instructions().unwrap();
        let x86_64 = |name| nr(name, ScmpArch::X8664);
        let call = |n, args| run(&program, AUDIT_ARCH_X86_64, n, args);
        assert_eq!(call(x86_64("read"), [0; 6]), ALLOW_RET);
        assert_eq!(call(x86_64("mount"), [0; 6]), EPERM_RET);
        assert_eq!(call(x86_64("unshare"), [0; 6]), EPERM_RET);
        // clone with namespace flags is refused, a plain one (a thread, a fork) is not.
        assert_eq!(
            call(x86_64("clone"), [0x0001_1200, 0, 0, 0, 0, 0]),
            ALLOW_RET
        );
        assert_eq!(
            call(x86_64("clone"), [0x1000_0000, 0, 0, 0, 0, 0]),
            EPERM_RET
        );
        assert_eq!(call(x86_64("clone3"), [0; 6]), ENOSYS_RET);
        // personality(2): only the harmless personas.
        assert_eq!(call(x86_64("personality"), [0; 6]), ALLOW_RET);
        assert_eq!(
            call(x86_64("personality"), [0x0040_0000, 0, 0, 0, 0, 0]),
            EPERM_RET
        );
        // A call newer than any the profile names: ENOSYS, so that libc falls back.
        assert_eq!(call(1000, [0; 6]), ENOSYS_RET);
        // The 32-bit ABIs the profile names have their own numbers.
        assert_eq!(
            run(&program, AUDIT_ARCH_I386, nr("read", ScmpArch::X86), [0; 6]),
            ALLOW_RET
        );
        assert_eq!(run(&program, AUDIT_ARCH_I386, 5000, [0; 6]), ENOSYS_RET);
        assert_eq!(call(nr("read", ScmpArch::X32), [0; 6]), ALLOW_RET);
        assert_eq!(call(X32_SYSCALL_BIT | 5000, [0; 6]), ENOSYS_RET);
    }

    #[test]
    fn localhost_profiles_compile_as_runc_compiles_them() {
        let profile = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [
                {"names": ["mkdir", "no_such_call"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                // Two conditions on one argument: either matches (one rule per condition).
                {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "args": [
                    {"index": 1, "value": 9, "op": "SCMP_CMP_EQ"},
                    {"index": 1, "value": 15, "op": "SCMP_CMP_EQ"}]},
            ],
        });
        let plan = compile(&profile).unwrap();
        assert_eq!(plan.flags, 1 << 1, "LOG kept, TSYNC dropped");
        let program = plan.instructions().unwrap();
        let call = |name, args| run(&program, AUDIT_ARCH_X86_64, nr(name, ScmpArch::X8664), args);
        assert_eq!(call("mkdir", [0; 6]), RET_ERRNO | 13);
        assert_eq!(call("getpid", [0; 6]), ALLOW_RET);
        assert_eq!(call("kill", [1, 9, 0, 0, 0, 0]), EPERM_RET);
        assert_eq!(call("kill", [1, 15, 0, 0, 0, 0]), EPERM_RET);
        assert_eq!(call("kill", [1, 10, 0, 0, 0, 0]), ALLOW_RET);
        // An allowing default needs no stub: new calls are let through.
        assert_eq!(run(&program, AUDIT_ARCH_X86_64, 1000, [0; 6]), ALLOW_RET);
    }

    #[test]
    fn what_the_native_path_cannot_do_is_left_to_the_runtime() {
        for profile in [
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
        ] {
            assert!(matches!(
                compile(&profile),
                Err(SeccompCompileError::NeedsRuntime(_))
            ));
        }
        for profile in [
            json!({"defaultAction": "SCMP_ACT_BOGUS"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_VAX"]}),
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["kill"], "action": "SCMP_ACT_ALLOW", "args": [
                    {"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}),
            json!({"syscalls": []}),
        ] {
            assert!(
                matches!(compile(&profile), Err(SeccompCompileError::Invalid(_))),
                "{profile}"
            );
        }
    }
}
