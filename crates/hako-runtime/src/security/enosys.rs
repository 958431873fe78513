//! runc's -ENOSYS stub (libcontainer/seccomp/patchbpf), prepended to the BPF program libseccomp
//! generates for `linux.seccomp`.
//!
//! A profile with a restrictive default action (ERRNO, KILL, TRAP...) turns every syscall it does
//! not mention into that action, including syscalls newer than the profile or than the
//! libseccomp that compiled it. glibc probes new syscalls (clone3, faccessat2, close_range...)
//! and falls back to the old ones only on ENOSYS, so an EPERM there breaks programs. runc fixes
//! this by answering ENOSYS for every syscall number above the largest one the profile names, per
//! architecture listed in `architectures`; hako builds the same stub, instruction for
//! instruction, so a container sees the same errno under both runtimes. As in runc, a profile
//! without `architectures` gets no stub, and neither does one whose default action lets syscalls
//! through (ALLOW, LOG, TRACE).

use std::collections::BTreeMap;

use hako_spec::oci::{LinuxSeccomp, LinuxSeccompAction};
use libseccomp::{ScmpArch, ScmpSyscall};

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const JA: u16 = 0x05; // BPF_JMP | BPF_JA
const JEQ: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JGT: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const JSET: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const RET: u16 = 0x06; // BPF_RET | BPF_K
/// SECCOMP_RET_ERRNO | ENOSYS.
pub const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
/// `struct seccomp_data`: nr at offset 0, arch at 4.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
/// x32 syscalls are x86_64 syscalls with this bit set in the number.
const X32_SYSCALL_BIT: u32 = 1 << 30;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

fn ld(off: u32) -> Insn {
    Insn {
        code: LD_W_ABS,
        jt: 0,
        jf: 0,
        k: off,
    }
}
fn ja(skip: u32) -> Insn {
    Insn {
        code: JA,
        jt: 0,
        jf: 0,
        k: skip,
    }
}
fn jmp(code: u16, k: u32, jt: u8, jf: u8) -> Insn {
    Insn { code, jt, jf, k }
}
fn ret_enosys() -> Insn {
    Insn {
        code: RET,
        jt: 0,
        jf: 0,
        k: RET_ENOSYS,
    }
}

/// The kernel's `AUDIT_ARCH_*` value for a libseccomp architecture (what `seccomp_data.arch`
/// holds). x32 shares x86_64's. Architectures runc does not know get no stub section.
fn audit_arch(a: ScmpArch) -> Option<u32> {
    use ScmpArch::*;
    Some(match a {
        X86 => 0x4000_0003,
        X8664 | X32 => AUDIT_ARCH_X86_64,
        Arm => 0x4000_0028,
        Aarch64 => 0xc000_00b7,
        Mips => 0x0000_0008,
        Mips64 => 0x8000_0008,
        Mips64N32 => 0xa000_0008,
        Mipsel => 0x4000_0008,
        Mipsel64 => 0xc000_0008,
        Mipsel64N32 => 0xe000_0008,
        Ppc => 0x0000_0014,
        Ppc64 => 0x8000_0015,
        Ppc64Le => 0xc000_0015,
        S390 => 0x0000_0016,
        S390X => 0x8000_0016,
        Riscv64 => 0xc000_00f3,
        _ => return None,
    })
}

/// Largest syscall number the profile names, per kernel architecture and libseccomp
/// architecture (x86_64 and x32 share one kernel architecture but not their numbers).
type LastSyscalls = BTreeMap<u32, Vec<(ScmpArch, u32)>>;

fn last_syscalls(s: &LinuxSeccomp, archs: &[ScmpArch]) -> LastSyscalls {
    let names: Vec<&String> = s
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names())
        .collect();
    let mut last = LastSyscalls::new();
    for &arch in archs {
        let arch = if arch == ScmpArch::Native {
            ScmpArch::native()
        } else {
            arch
        };
        let Some(native) = audit_arch(arch) else {
            crate::log::debug(&format!(
                "seccomp: no -ENOSYS stub for architecture {arch:?}"
            ));
            continue;
        };
        let entry = last.entry(native).or_default();
        if entry.iter().any(|(a, _)| *a == arch) {
            continue;
        }
        // Names this architecture does not have resolve to negative pseudo numbers: ignored.
        let largest = names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .map(i32::from)
            .filter(|nr| *nr > 0)
            .max();
        match largest {
            Some(nr) => entry.push((arch, nr as u32)),
            None => crate::log::warn(&format!("could not find any syscalls for arch {arch:?}")),
        }
    }
    last
}

/// The stub for `s` (empty when runc would not patch the filter). Its last jump lands on the
/// first instruction after it, where libseccomp's program goes.
pub fn stub(s: &LinuxSeccomp, archs: &[ScmpArch]) -> Result<Vec<Insn>, String> {
    if matches!(
        s.default_action(),
        LinuxSeccompAction::ScmpActAllow
            | LinuxSeccompAction::ScmpActLog
            | LinuxSeccompAction::ScmpActTrace
    ) {
        // A tracer should handle -ENOSYS itself, and allow-by-default needs nothing.
        return Ok(vec![]);
    }
    generate(&last_syscalls(s, archs))
}

/// The checks of a native architecture with one syscall table: above its largest known
/// number, ENOSYS (`base_enosys` instructions on); else on into the filter.
fn one_arch(
    native: u32,
    arch: ScmpArch,
    sysno: u32,
    base_enosys: u32,
) -> Result<Vec<Insn>, String> {
    let base_filter = base_enosys + 1;
    let mut section = vec![];
    if matches!(arch, ScmpArch::S390 | ScmpArch::S390X) {
        // Unknown syscalls arrive as setup(2) = 0, the multiplexer: ENOSYS.
        section.extend([jmp(JEQ, 0, 0, 1), ret_enosys()]);
    }
    let mut section_tail = if base_enosys < 255 {
        vec![jmp(JGT, sysno, (base_enosys + 1) as u8, 0), ja(base_filter)]
    } else {
        vec![jmp(JGT, sysno, 0, 1), ret_enosys(), ja(base_filter)]
    };
    if native == AUDIT_ARCH_X86_64 {
        // Skip the section for the other mode (x32 numbers have bit 30 set).
        let over = (section_tail.len() - 1) as u8;
        let check = match arch {
            ScmpArch::X8664 => jmp(JSET, X32_SYSCALL_BIT, over, 0),
            ScmpArch::X32 => jmp(JSET, X32_SYSCALL_BIT, 0, over),
            a => return Err(format!("unknown amd64 native architecture {a:?}")),
        };
        section_tail.insert(0, check);
    }
    section.extend(section_tail);
    Ok(section)
}

/// The checks of x86_64 with both its tables (x86_64 and x32, told apart by bit 30).
fn x86_and_x32(
    native: u32,
    maxes: [&(ScmpArch, u32); 2],
    base_enosys: u32,
) -> Result<Vec<Insn>, String> {
    if native != AUDIT_ARCH_X86_64 {
        return Err(format!(
            "unknown architecture overlap on native arch {native:#x}"
        ));
    }
    let find = |want: ScmpArch| {
        maxes
            .into_iter()
            .find(|(x, _)| *x == want)
            .map(|(_, n)| *n)
            .ok_or_else(|| format!("missing {want:?} in overlapping x86_64 arch"))
    };
    let (x86, x32) = (find(ScmpArch::X8664)?, find(ScmpArch::X32)?);
    let base_filter = base_enosys + 1;
    Ok(if base_enosys + 2 <= 255 {
        vec![
            jmp(JSET, X32_SYSCALL_BIT, 1, 0),
            jmp(JGT, x86, (base_enosys + 2) as u8, 1),
            jmp(JGT, x32, (base_enosys + 1) as u8, 0),
            ja(base_filter),
        ]
    } else {
        vec![
            jmp(JSET, X32_SYSCALL_BIT, 1, 0),
            jmp(JGT, x86, 1, 2),
            jmp(JGT, x32, 0, 1),
            ret_enosys(),
            ja(base_filter),
        ]
    })
}

/// runc's generateEnosysStub: built back to front, because every jump is counted from the end.
fn generate(last: &LastSyscalls) -> Result<Vec<Insn>, String> {
    if last.values().all(Vec::is_empty) {
        return Ok(vec![]);
    }
    // Sections prepend to `tail`; its last two instructions are "into the filter" and ENOSYS.
    let mut tail = vec![ja(1), ret_enosys()];
    let mut jump_table: BTreeMap<u32, u32> = BTreeMap::new();
    for (&native, maxes) in last {
        let base_enosys = tail.len() as u32 - 1;
        let mut section = vec![ld(OFF_NR)];
        match maxes.as_slice() {
            [] => continue,
            [(arch, sysno)] => section.extend(one_arch(native, *arch, *sysno, base_enosys)?),
            [a, b] => section.extend(x86_and_x32(native, [a, b], base_enosys)?),
            more => {
                return Err(format!(
                    "invalid number of architecture overlaps: {}",
                    more.len()
                ))
            }
        }
        tail.splice(0..0, section);
        jump_table.insert(native, tail.len() as u32);
    }
    // An architecture matched by none of the checks below goes straight to the filter (which
    // applies its bad-architecture action).
    tail.insert(0, ja(tail.len() as u32));
    for native in last.keys() {
        // A missing entry (no syscalls for that architecture) jumps to the filter, as in runc.
        let jump = tail.len() as u32 - jump_table.get(native).copied().unwrap_or(0);
        if jump <= 255 {
            tail.insert(0, jmp(JEQ, *native, jump as u8, 0));
        } else {
            tail.splice(0..0, [jmp(JEQ, *native, 0, 1), ja(jump)]);
        }
    }
    tail.insert(0, ld(OFF_ARCH));
    Ok(tail)
}

/// `struct sock_filter[]` in host byte order, as seccomp(2) and libseccomp's export use.
pub fn to_bytes(insns: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * 8);
    for i in insns {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.push(i.jt);
        out.push(i.jf);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program (the subset the stub uses) on `seccomp_data{nr, arch}`;
    /// `None` means "fell off the end" (into the filter that follows).
    fn eval(p: &[Insn], nr: u32, arch: u32) -> Option<u32> {
        let (mut pc, mut acc) = (0usize, 0u32);
        while pc < p.len() {
            let i = p[pc];
            pc += 1;
            match i.code {
                LD_W_ABS => acc = if i.k == OFF_NR { nr } else { arch },
                JA => pc += i.k as usize,
                RET => return Some(i.k),
                JEQ | JGT | JSET => {
                    let t = match i.code {
                        JEQ => acc == i.k,
                        JGT => acc > i.k,
                        _ => acc & i.k != 0,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
        None
    }

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    const X86: u32 = 0x4000_0003;

    #[test]
    fn enosys_above_the_largest_syscall_per_arch() {
        let s = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
               {"names":["read","write","openat","getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let p = stub(&s, &[ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32]).unwrap();
        // x86_64: openat is 257, the largest.
        assert_eq!(eval(&p, 257, AUDIT_ARCH_X86_64), None);
        assert_eq!(eval(&p, 100, AUDIT_ARCH_X86_64), None);
        assert_eq!(eval(&p, 258, AUDIT_ARCH_X86_64), Some(RET_ENOSYS));
        assert_eq!(eval(&p, 1000, AUDIT_ARCH_X86_64), Some(RET_ENOSYS));
        // x32: the same numbers with bit 30.
        assert_eq!(eval(&p, X32_SYSCALL_BIT | 257, AUDIT_ARCH_X86_64), None);
        assert_eq!(
            eval(&p, X32_SYSCALL_BIT | 600, AUDIT_ARCH_X86_64),
            Some(RET_ENOSYS)
        );
        // i386: openat is 295.
        assert_eq!(eval(&p, 295, X86), None);
        assert_eq!(eval(&p, 296, X86), Some(RET_ENOSYS));
        // Another architecture: straight to the filter.
        assert_eq!(eval(&p, 5000, 0xc000_00b7), None);
    }

    #[test]
    fn only_x86_64_listed_leaves_x32_to_the_filter() {
        let s = profile(
            r#"{"defaultAction":"SCMP_ACT_KILL","syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let p = stub(&s, &[ScmpArch::X8664]).unwrap();
        assert_eq!(eval(&p, 40, AUDIT_ARCH_X86_64), Some(RET_ENOSYS));
        assert_eq!(eval(&p, 39, AUDIT_ARCH_X86_64), None);
        assert_eq!(eval(&p, X32_SYSCALL_BIT | 400, AUDIT_ARCH_X86_64), None);
    }

    #[test]
    fn no_stub_when_runc_makes_none() {
        let allow = profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        assert!(stub(&allow, &[ScmpArch::X8664]).unwrap().is_empty());
        let no_archs = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(stub(&no_archs, &[]).unwrap().is_empty());
    }

    #[test]
    fn long_jumps_stay_correct() {
        // Fabricated: many kernel architectures, so that some jumps exceed 255 instructions.
        let mut last = LastSyscalls::new();
        for a in 0..120u32 {
            last.insert(0x1000 + a, vec![(ScmpArch::Arm, 100 + a)]);
        }
        let p = generate(&last).unwrap();
        for a in 0..120u32 {
            assert_eq!(eval(&p, 100 + a, 0x1000 + a), None, "arch {a}");
            assert_eq!(eval(&p, 101 + a, 0x1000 + a), Some(RET_ENOSYS), "arch {a}");
        }
        assert_eq!(eval(&p, 9999, 0x42), None);
    }
}
