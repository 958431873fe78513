//! cgroup v2 device control. v2 has no devices.allow/deny files: a BPF_PROG_TYPE_CGROUP_DEVICE
//! program attached to the container's cgroup decides every open/mknod of a device node. The
//! program is emitted here from `linux.resources.devices` (no BPF library: a dozen opcodes) and
//! loaded and attached with raw `bpf(2)`.
//!
//! Semantics are those of the v1 devices controller as runc drives it: the rules apply in order,
//! the last rule that matches decides, and before the first rule everything is allowed — so the
//! usual leading "deny all" makes it an allow list. Each access bit (read, write, mknod) of a
//! request is decided on its own, as v1 does: denying `w` after allowing `rwm` still lets a
//! read-only open through, and an `rw` open needs both bits allowed.
//!
//! Program shape (the kernel passes `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major;
//! u32 minor; }` in r1; access in the upper 16 bits of access_type, device type in the lower):
//!
//! ```text
//!   r2 = type, r3 = access, r4 = major, r5 = minor
//!   for bit in [mknod, read, write]:            one pass per access bit
//!     if !(r3 & bit) goto next_pass
//!     for rule in rules.rev() with bit in rule.access:
//!       if type/major/minor differ goto next_rule
//!       deny: r0 = 0; exit          allow: goto next_pass
//!     (no rule matched: allowed, the initial state)
//!   r0 = 1; exit
//! ```
//!
//! Blocks after a rule matching every device are never reached and are not emitted (the verifier
//! rejects unreachable instructions).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use hako_spec::oci::{LinuxDeviceCgroup, LinuxDeviceType};
use nix::errno::Errno;

use crate::error::{Error, Result};

/// One eBPF instruction, as `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const JMP_JA: u8 = 0x05; // BPF_JMP | BPF_JA
const JMP32_JEQ_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

pub const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
pub const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR
pub const ACC_MKNOD: i32 = 1; // BPF_DEVCG_ACC_MKNOD
pub const ACC_READ: i32 = 2; // BPF_DEVCG_ACC_READ
pub const ACC_WRITE: i32 = 4; // BPF_DEVCG_ACC_WRITE

const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// A device rule reduced to what the program tests.
#[derive(Debug, Clone, PartialEq)]
struct Rule {
    /// None: any type (`a`).
    typ: Option<i32>,
    major: Option<u32>,
    minor: Option<u32>,
    access: i32,
    allow: bool,
}

fn rule(d: &LinuxDeviceCgroup) -> Result<Rule> {
    let field = "linux.resources.devices";
    let typ = match d.typ() {
        None | Some(LinuxDeviceType::A) => None,
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some(DEV_CHAR),
        Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
        Some(t) => {
            return Err(Error::Usage(format!(
                "{field}: device type {t:?} cannot be in a cgroup rule"
            )))
        }
    };
    let num = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
        match v {
            None => Ok(None),
            Some(v) if v < 0 => Ok(None), // -1 is the wildcard `*`
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| Error::Usage(format!("{field}: {what} {v} is out of range"))),
        }
    };
    // Letters other than r, w and m are ignored, as runc does (its emulator drops them).
    let mut access = 0;
    for c in d.access().as_deref().unwrap_or("rwm").chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        };
    }
    Ok(Rule {
        typ,
        major: num(d.major(), "major")?,
        minor: num(d.minor(), "minor")?,
        access,
        allow: d.allow(),
    })
}

/// Jump targets are patched once the target's index is known.
#[derive(Default)]
struct Emitter {
    out: Vec<Insn>,
    /// (instruction index, label) of forward jumps.
    fixups: Vec<(usize, usize)>,
    labels: Vec<Option<usize>>,
}

impl Emitter {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn bind(&mut self, l: usize) {
        self.labels[l] = Some(self.out.len());
    }
    fn push(&mut self, i: Insn) {
        self.out.push(i);
    }
    fn jump(&mut self, code: u8, dst: u8, imm: i32, to: usize) {
        self.fixups.push((self.out.len(), to));
        self.out.push(insn(code, dst, 0, 0, imm));
    }
    fn ret(&mut self, v: i32) {
        self.push(insn(ALU32_MOV_K, R0, 0, 0, v));
        self.push(insn(JMP_EXIT, 0, 0, 0, 0));
    }
    fn finish(mut self) -> Vec<Insn> {
        for (at, l) in self.fixups {
            let target = self.labels[l].expect("label bound");
            self.out[at].off = (target - at - 1) as i16;
        }
        self.out
    }
}

/// The device program for `rules` (in config order, the runtime's defaults appended).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let rules: Vec<Rule> = rules.iter().map(rule).collect::<Result<_>>()?;
    let mut e = Emitter::default();
    e.push(insn(LDX_MEM_W, R2, R1, 0, 0));
    e.push(insn(ALU32_AND_K, R2, 0, 0, 0xffff));
    e.push(insn(LDX_MEM_W, R3, R1, 0, 0));
    e.push(insn(ALU32_RSH_K, R3, 0, 0, 16));
    e.push(insn(LDX_MEM_W, R4, R1, 4, 0));
    e.push(insn(LDX_MEM_W, R5, R1, 8, 0));
    for bit in [ACC_MKNOD, ACC_READ, ACC_WRITE] {
        let next_pass = e.label();
        e.push(insn(ALU32_MOV_X, R0, R3, 0, 0));
        e.push(insn(ALU32_AND_K, R0, 0, 0, bit));
        e.jump(JMP32_JEQ_K, R0, 0, next_pass);
        for r in rules.iter().rev().filter(|r| r.access & bit != 0) {
            let next_rule = e.label();
            let conds = [
                (R2, r.typ),
                (R4, r.major.map(|v| v as i32)),
                (R5, r.minor.map(|v| v as i32)),
            ];
            let mut conditional = false;
            for (reg, want) in conds {
                if let Some(v) = want {
                    e.jump(JMP32_JNE_K, reg, v, next_rule);
                    conditional = true;
                }
            }
            if r.allow {
                e.jump(JMP_JA, 0, 0, next_pass);
            } else {
                e.ret(0);
            }
            e.bind(next_rule);
            if !conditional {
                // Matches every device: the rules before it are never reached.
                break;
            }
        }
        e.bind(next_pass);
    }
    e.ret(1);
    Ok(e.finish())
}

// bpf(2) commands, program and attach types, flags.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading part of `union bpf_attr` for BPF_PROG_LOAD (the kernel accepts a shorter attr
/// as long as what it does not know is absent).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::result::Result<i64, Errno> {
    let r = libc::syscall(
        libc::SYS_bpf,
        cmd,
        attr as *mut T,
        std::mem::size_of::<T>() as libc::c_uint,
    );
    if r < 0 {
        Err(Errno::last())
    } else {
        Ok(r)
    }
}

fn load(insns: &[Insn]) -> Result<OwnedFd> {
    let license = c"Apache";
    let mut log = vec![0u8; 64 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    attr.prog_name[..4].copy_from_slice(b"hako");
    // SAFETY: `attr` is a live, exclusively borrowed bpf_attr for PROG_LOAD; `insns` and `license`
    // outlive the call.
    let first = unsafe { bpf(BPF_PROG_LOAD, &mut attr) };
    let r = match first {
        Err(Errno::EINVAL) | Err(Errno::EACCES) => {
            // Again with the verifier's log, for the error message.
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            // SAFETY: as above; `log` is a live buffer of exactly `log_size` bytes the kernel may
            // write into.
            unsafe { bpf(BPF_PROG_LOAD, &mut attr) }
        }
        r => r,
    };
    match r {
        // SAFETY: PROG_LOAD returned a fresh fd that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(e) => {
            let text =
                String::from_utf8_lossy(&log[..log.iter().position(|b| *b == 0).unwrap_or(0)])
                    .trim()
                    .to_string();
            Err(Error::Usage(format!(
                "linux.resources.devices: load the cgroup v2 device program: {}{}{text}",
                crate::error::errno_text(e),
                if text.is_empty() { "" } else { ": " }
            )))
        }
    }
}

/// Ids of the device programs attached to `cg` itself (not inherited ones).
fn attached(cg: &OwnedFd) -> std::result::Result<Vec<u32>, Errno> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: `attr.prog_ids` points at `ids`, which holds `prog_cnt` u32s and outlives the call.
    unsafe { bpf(BPF_PROG_QUERY, &mut attr) }?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Enforces `rules` on the cgroup `dir`: loads the program, attaches it (BPF_F_ALLOW_MULTI, so
/// programs of parent cgroups still apply), then detaches the programs attached there before —
/// an `update` replaces the container's rules. New before old: never a moment without a filter.
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = program(rules)?;
    let cg: OwnedFd = std::fs::File::open(dir)
        .map_err(|e| Error::io("open cgroup", dir, e))?
        .into();
    let field = "linux.resources.devices";
    let sys = |what: &str, e: Errno| {
        Error::Usage(format!(
            "{field}: {what} on {}: {}",
            dir.display(),
            crate::error::errno_text(e)
        ))
    };
    let old = attached(&cg).map_err(|e| sys("query device programs", e))?;
    let prog = load(&insns)?;
    let mut attr = AttachAttr {
        target_fd: cg.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    // SAFETY: `attr` is a fully initialised bpf_attr for PROG_ATTACH naming fds we hold open.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr) }.map_err(|e| sys("attach the device program", e))?;
    for id in old {
        let mut get = [id, 0, 0];
        // SAFETY: `get` is the {prog_id, next_id, open_flags} prefix of bpf_attr GET_FD_BY_ID
        // reads; a returned fd is new and only ours.
        let fd = match unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut get) } {
            // SAFETY: GET_FD_BY_ID returned a fresh fd that nothing else owns.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(sys("open the previous device program", e)),
        };
        let mut attr = AttachAttr {
            target_fd: cg.as_raw_fd() as u32,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        // SAFETY: `attr` is a fully initialised bpf_attr for PROG_DETACH naming fds we hold open.
        match unsafe { bpf(BPF_PROG_DETACH, &mut attr) } {
            Ok(_) | Err(Errno::ENOENT) => {}
            Err(e) => return Err(sys("detach the previous device program", e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    /// Runs the emitted program the way the kernel would, for the opcodes `program` uses.
    fn eval(p: &[Insn], typ: i32, major: u32, minor: u32, access: i32) -> u32 {
        let ctx = [(access as u32) << 16 | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        for _ in 0..10_000 {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            let jump = |cond: bool, pc: &mut usize| {
                if cond {
                    *pc = (*pc as i64 + i.off as i64) as usize
                }
            };
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = ctx[i.off as usize / 4] as u64;
                }
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                ALU32_MOV_K => r[dst] = i.imm as u32 as u64,
                ALU32_MOV_X => r[dst] = r[src] as u32 as u64,
                JMP_JA => jump(true, &mut pc),
                JMP32_JEQ_K => jump(r[dst] as u32 == i.imm as u32, &mut pc),
                JMP32_JNE_K => jump(r[dst] as u32 != i.imm as u32, &mut pc),
                JMP_EXIT => return r[0] as u32,
                c => panic!("unexpected opcode {c:#x}"),
            }
            assert!(pc < p.len(), "ran off the end");
        }
        panic!("no exit");
    }

    fn oci_default() -> Vec<LinuxDeviceCgroup> {
        // The runtime spec's usual leading deny-all, then runc's default allow list.
        let mut v = rules(serde_json::json!([{ "allow": false, "access": "rwm" }]));
        let r = crate::cgroups::Cgroups::with_default_devices(
            serde_json::from_value(serde_json::json!({ "devices": v })).unwrap(),
        );
        v = r.devices().clone().unwrap();
        v
    }

    #[test]
    fn default_list_shape() {
        let p = program(&oci_default()).unwrap();
        // 6 loads, then per access bit: 3 for the bit test, the rules holding that bit in
        // reverse (type, major, minor tests as present, 1-2 for the verdict), the deny-all.
        assert_eq!(
            &p[..2],
            &[
                insn(LDX_MEM_W, R2, R1, 0, 0),
                insn(ALU32_AND_K, R2, 0, 0, 0xffff)
            ]
        );
        assert_eq!(p.last(), Some(&insn(JMP_EXIT, 0, 0, 0, 0)));
        assert_eq!(p[p.len() - 2], insn(ALU32_MOV_K, R0, 0, 0, 1));
        // mknod pass: 3 + c 10:200 (3 tests + ja) + c 136:* (2 + ja) + 7 rules `c X:Y` (4 each)
        // + b *:* m, c *:* m (1 + ja each) + deny-all (mov, exit) = 44; read and write passes
        // the same without the two mknod-only rules = 40 each; 6 loads and the final allow.
        assert_eq!(p.len(), 6 + 44 + 40 + 40 + 2, "{p:#?}");
        // Every jump lands inside the program.
        for (i, x) in p.iter().enumerate() {
            if (x.code & 0x07 == 0x05 || x.code & 0x07 == 0x06) && x.code != JMP_EXIT {
                let t = i as i64 + 1 + x.off as i64;
                assert!(t > i as i64 && (t as usize) < p.len(), "jump at {i}");
            }
        }
    }

    #[test]
    fn default_list_semantics() {
        let p = program(&oci_default()).unwrap();
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(eval(&p, DEV_CHAR, 1, 3, rw), 1, "/dev/null");
        assert_eq!(eval(&p, DEV_CHAR, 1, 9, ACC_READ), 1, "/dev/urandom");
        assert_eq!(eval(&p, DEV_CHAR, 136, 7, rw), 1, "/dev/pts/7");
        assert_eq!(eval(&p, DEV_CHAR, 1, 11, ACC_WRITE), 0, "/dev/kmsg");
        assert_eq!(eval(&p, DEV_BLOCK, 8, 0, ACC_READ), 0, "/dev/sda");
        assert_eq!(eval(&p, DEV_BLOCK, 8, 0, ACC_MKNOD), 1, "mknod of any node");
        assert_eq!(eval(&p, DEV_CHAR, 1, 11, ACC_MKNOD | ACC_READ), 0);
    }

    #[test]
    fn last_match_wins_per_access_bit() {
        let p = program(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm" },
            { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "w" },
        ])))
        .unwrap();
        assert_eq!(eval(&p, DEV_CHAR, 1, 11, ACC_READ), 1);
        assert_eq!(eval(&p, DEV_CHAR, 1, 11, ACC_WRITE), 0);
        assert_eq!(eval(&p, DEV_CHAR, 1, 11, ACC_READ | ACC_WRITE), 0);
        assert_eq!(eval(&p, DEV_CHAR, 1, 12, ACC_READ), 0);
        assert_eq!(eval(&p, DEV_BLOCK, 1, 11, ACC_READ), 0);

        // Without a leading deny-all everything not denied is allowed (v1's initial state).
        let p = program(&rules(serde_json::json!([
            { "allow": false, "type": "b", "access": "rw" },
        ])))
        .unwrap();
        assert_eq!(eval(&p, DEV_BLOCK, 8, 0, ACC_READ), 0);
        assert_eq!(eval(&p, DEV_BLOCK, 8, 0, ACC_MKNOD), 1);
        assert_eq!(eval(&p, DEV_CHAR, 1, 11, ACC_READ), 1);

        // An allow-all after a deny-all: the earlier rules are not emitted at all.
        let p = program(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "a", "access": "rwm" },
        ])))
        .unwrap();
        assert_eq!(p.len(), 6 + 3 * (3 + 1) + 2);
        assert_eq!(eval(&p, DEV_BLOCK, 8, 0, ACC_READ | ACC_WRITE), 1);
    }

    /// As root on a host with a cgroup2 mount (pure v2, or a hybrid's `unified`): the kernel
    /// accepts the program, enforces it, and `apply` again replaces it. Skipped otherwise.
    #[test]
    fn kernel_accepts_and_enforces() {
        let info = crate::procinfo::mountinfo().unwrap_or_default();
        let Some(h) = crate::cgroups::hierarchies(&info)
            .into_iter()
            .find(|h| h.v2)
        else {
            return eprintln!("skipped: no cgroup2 mount");
        };
        if !nix::unistd::geteuid().is_root() {
            return eprintln!("skipped: needs root");
        }
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let base = crate::cgroups::own_path(&h, &own);
        let dir = h
            .mountpoint
            .join(base.strip_prefix("/").unwrap())
            .join(format!("hako-bpf-test-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let try_open = |dev: &str| {
            let script = format!("echo $$ > {}/cgroup.procs && : > {dev}", dir.display());
            std::process::Command::new("/bin/sh")
                .args(["-c", &script])
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap()
                .success()
        };
        let deny_kmsg = rules(serde_json::json!([
            { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm" },
            { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "w" },
        ]));
        // Removed even when an assertion fails (the shells that joined it have exited).
        struct Rm(std::path::PathBuf);
        impl Drop for Rm {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir(&self.0);
            }
        }
        let _rm = Rm(dir.clone());
        apply(&dir, &deny_kmsg).unwrap();
        let fd: OwnedFd = std::fs::File::open(&dir).unwrap().into();
        assert_eq!(attached(&fd).unwrap().len(), 1);
        assert!(!try_open("/dev/kmsg"), "write-open of 1:11 allowed");
        assert!(try_open("/dev/null"), "/dev/null denied");
        apply(&dir, &rules(serde_json::json!([]))).unwrap();
        assert_eq!(attached(&fd).unwrap().len(), 1, "replaced, not added");
        assert!(try_open("/dev/kmsg"), "still denied after the update");
        apply(&dir, &oci_default()).unwrap();
        assert_eq!(attached(&fd).unwrap().len(), 1);
        assert!(
            !try_open("/dev/kmsg") && try_open("/dev/null"),
            "default list"
        );
    }

    #[test]
    fn bad_rules() {
        assert!(program(&rules(
            serde_json::json!([{ "allow": true, "type": "p", "access": "rw" }])
        ))
        .is_err());
        assert!(program(&rules(serde_json::json!([
            { "allow": true, "type": "c", "major": 5_000_000_000i64, "access": "r" }
        ])))
        .is_err());
    }
}
