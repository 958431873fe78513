//! cgroup v1 device rules changed through a minimal transition, as runc's devices emulator does.
//!
//! The kernel's v1 devices controller holds a default (allow all or deny all) and a list of
//! exceptions. Replaying a rule set from "deny all" each time would open a window in which the
//! container can open nothing, not even /dev/null, and the kernel refuses to change the default
//! of a cgroup that has children at all (EINVAL), so a container that made sub-cgroups could not
//! be updated. Instead the current state is read back from `devices.list`, the wanted state is
//! computed by applying the rules to an empty allow list, and only the difference is written.
//! Access strings are normalised to the `r`, `w`, `m` the kernel accepts (runc ignores any other
//! letter the same way).

use std::collections::BTreeMap;

use hako_spec::oci::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

const FIELD: &str = "linux.resources.devices";

/// Access bits, as a set.
const READ: u8 = 1;
const WRITE: u8 = 2;
const MKNOD: u8 = 4;

/// `rwm` → bits; letters other than r, w and m are ignored (runc's Permissions).
pub fn perms(s: &str) -> u8 {
    s.chars().fold(0, |acc, c| {
        acc | match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => 0,
        }
    })
}

/// Bits → the canonical `rwm` string.
pub fn perms_str(p: u8) -> String {
    [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| p & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// A device (class) as the controller names it: `c 1:3`, `b *:*`; `None` is the wildcard `*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Node {
    pub typ: char,
    pub major: Option<u32>,
    pub minor: Option<u32>,
}

impl Node {
    fn show(&self) -> String {
        let n = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        format!("{} {}:{}", self.typ, n(self.major), n(self.minor))
    }
}

/// One line for devices.allow / devices.deny.
pub fn rule_line(node: &Node, p: u8) -> String {
    format!("{} {}", node.show(), perms_str(p))
}

/// One OCI device rule as (allow, node, access bits).
pub fn from_spec(d: &LinuxDeviceCgroup) -> Result<(bool, Node, u8)> {
    let typ = match d.typ() {
        None | Some(LinuxDeviceType::A) => 'a',
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => 'c',
        Some(LinuxDeviceType::B) => 'b',
        Some(t) => {
            return Err(Error::Usage(format!(
                "{FIELD}: device type {t:?} cannot be in a cgroup rule"
            )))
        }
    };
    let num = |v: Option<i64>, what: &str| -> Result<Option<u32>> {
        match v {
            None => Ok(None),
            Some(v) if v < 0 => Ok(None), // -1 is the wildcard `*`
            Some(v) => u32::try_from(v)
                .map(Some)
                .map_err(|_| Error::Usage(format!("{FIELD}: {what} {v} is out of range"))),
        }
    };
    let node = Node {
        typ,
        major: num(d.major(), "major")?,
        minor: num(d.minor(), "minor")?,
    };
    Ok((
        d.allow(),
        node,
        perms(d.access().as_deref().unwrap_or("rwm")),
    ))
}

/// A devices cgroup's state: its default, and the exceptions to it.
#[derive(Debug, Clone, Default)]
pub struct Emulator {
    /// true: everything is allowed but the exceptions (a "black list"); false: nothing is.
    default_allow: bool,
    rules: BTreeMap<Node, u8>,
    /// The exceptions in the order the rules first named them. Not part of the state (the
    /// kernel's exceptions are a set), but the kernel lists them in the order they were added,
    /// and the runtime-tools validation (linux_cgroups_devices) reads `devices.list` back
    /// expecting the config's rules first, in the config's order.
    order: Vec<Node>,
}

impl PartialEq for Emulator {
    fn eq(&self, other: &Emulator) -> bool {
        self.default_allow == other.default_allow && self.rules == other.rules
    }
}

impl Emulator {
    /// The state the rules give, starting from "deny all".
    pub fn from_rules(rules: &[LinuxDeviceCgroup]) -> Result<Emulator> {
        let mut e = Emulator::default();
        for r in rules {
            let (allow, node, p) = from_spec(r)?;
            e.apply(allow, node, p)?;
        }
        Ok(e)
    }

    /// The state the kernel reports in `devices.list`: the allowed devices, or `a *:* rwm` for a
    /// cgroup that allows everything (whose deny exceptions the kernel does not list).
    pub fn from_list(list: &str) -> Result<Emulator> {
        let mut e = Emulator::default();
        for line in list.lines().filter(|l| !l.trim().is_empty()) {
            let bad = || Error::Usage(format!("devices.list: cannot parse {line:?}"));
            let mut it = line.split_whitespace();
            let (Some(t), Some(mm), Some(a)) = (it.next(), it.next(), it.next()) else {
                return Err(bad());
            };
            let typ = match t {
                "a" | "b" | "c" => t.chars().next().expect("one letter"),
                _ => return Err(bad()),
            };
            let (ma, mi) = mm.split_once(':').ok_or_else(bad)?;
            let num = |s: &str| -> Result<Option<u32>> {
                if s == "*" {
                    Ok(None)
                } else {
                    s.parse().map(Some).map_err(|_| bad())
                }
            };
            let node = Node {
                typ,
                major: num(ma)?,
                minor: num(mi)?,
            };
            e.apply(true, node, perms(a))?;
        }
        Ok(e)
    }

    fn is_blacklist(&self) -> bool {
        self.default_allow
    }

    /// One rule, as the kernel applies it: a rule of type `a` resets the default and drops every
    /// exception; otherwise an exception is added (rule against the default) or removed.
    pub fn apply(&mut self, allow: bool, node: Node, p: u8) -> Result<()> {
        if node.typ == 'a' {
            *self = Emulator {
                default_allow: allow,
                ..Emulator::default()
            };
            return Ok(());
        }
        if allow != self.default_allow {
            if p != 0 {
                if !self.order.contains(&node) {
                    self.order.push(node);
                }
                *self.rules.entry(node).or_insert(0) |= p;
            }
            return Ok(());
        }
        // Removing an exception: the kernel silently ignores a removal that a wildcard exception
        // still covers, so (as runc) such a rule is refused rather than believed.
        let partial: Vec<String> = [
            Node {
                major: None,
                ..node
            },
            Node {
                minor: None,
                ..node
            },
            Node {
                major: None,
                minor: None,
                ..node
            },
        ]
        .iter()
        .filter(|w| **w != node)
        .filter(|w| self.rules.get(w).is_some_and(|have| have & p != 0))
        .map(|w| rule_line(w, self.rules[w]))
        .collect();
        if !partial.is_empty() {
            return Err(Error::Usage(format!(
                "{FIELD}: rule [{}] is not supported by devices cgroup v1 (cannot punch a hole in the wildcard rule [{}])",
                rule_line(&node, p),
                partial.join(", ")
            )));
        }
        if let Some(have) = self.rules.get_mut(&node) {
            *have &= !p;
            if *have == 0 {
                self.rules.remove(&node);
            }
        }
        Ok(())
    }

    /// The writes that take the cgroup from `self` to `target`, as (allow, node, bits): a reset
    /// only when the default must change (or when `self` allows everything, since its deny
    /// exceptions cannot be read back), then the exceptions that go, then the ones that come, in
    /// the order the target's rules named them.
    pub fn transition(&self, target: &Emulator) -> Vec<(bool, Node, u8)> {
        let mut out = Vec::new();
        let empty = BTreeMap::new();
        let old = if self.is_blacklist() || self.default_allow != target.default_allow {
            out.push((
                target.default_allow,
                Node {
                    typ: 'a',
                    major: None,
                    minor: None,
                },
                READ | WRITE | MKNOD,
            ));
            &empty
        } else {
            &self.rules
        };
        for (node, have) in old {
            let dropped = have & !target.rules.get(node).copied().unwrap_or(0);
            if dropped != 0 {
                out.push((target.default_allow, *node, dropped));
            }
        }
        for node in &target.order {
            let Some(want) = target.rules.get(node) else {
                continue;
            };
            let gained = want & !old.get(node).copied().unwrap_or(0);
            if gained != 0 {
                out.push((!target.default_allow, *node, gained));
            }
        }
        out
    }

    /// Whether `self`, read back after the writes, is `target` (exactly for an allow list; in
    /// mode only for a deny list, whose exceptions the kernel does not list).
    pub fn matches(&self, target: &Emulator) -> bool {
        if target.is_blacklist() {
            self.is_blacklist()
        } else {
            self == target
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: serde_json::Value) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_value(v).unwrap()
    }

    fn lines(t: &[(bool, Node, u8)]) -> Vec<String> {
        t.iter()
            .map(|(a, n, p)| format!("{} {}", if *a { "allow" } else { "deny" }, rule_line(n, *p)))
            .collect()
    }

    #[test]
    fn access_is_normalised() {
        assert_eq!(perms_str(perms("rwa")), "rw");
        assert_eq!(perms_str(perms("mwr")), "rwm");
        assert_eq!(perms_str(perms("")), "");
    }

    #[test]
    fn from_allow_all_resets_then_allows() {
        let cur = Emulator::from_list("a *:* rwm\n").unwrap();
        let want = Emulator::from_rules(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwa" }
        ])))
        .unwrap();
        assert_eq!(
            lines(&cur.transition(&want)),
            ["deny a *:* rwm", "allow c 1:3 rw"]
        );
    }

    #[test]
    fn allow_list_changes_minimally() {
        let cur = Emulator::from_list("c 1:3 rwm\nc 1:11 rwm\nc *:* m\n").unwrap();
        let want = Emulator::from_rules(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "r" },
            { "allow": true, "type": "c", "major": 1, "minor": 5, "access": "rw" },
            { "allow": true, "type": "c", "access": "m" }
        ])))
        .unwrap();
        assert_eq!(
            lines(&cur.transition(&want)),
            ["deny c 1:11 wm", "allow c 1:5 rw"]
        );
        // Nothing to do when nothing changes.
        assert!(want.transition(&want).is_empty());
    }

    /// runtime-tools' linux_cgroups_devices reads the exceptions back by position.
    #[test]
    fn allows_are_written_in_the_rules_order() {
        let cur = Emulator::from_list("a *:* rwm\n").unwrap();
        let want = Emulator::from_rules(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 10, "minor": 229, "access": "rwm" },
            { "allow": true, "type": "b", "major": 8, "minor": 20, "access": "rw" },
            { "allow": true, "type": "b", "major": 10, "minor": 200, "access": "r" },
            { "allow": true, "type": "b", "access": "m" },
            { "allow": true, "type": "c", "major": 10, "minor": 229, "access": "r" }
        ])))
        .unwrap();
        assert_eq!(
            lines(&cur.transition(&want)),
            [
                "deny a *:* rwm",
                "allow c 10:229 rwm",
                "allow b 8:20 rw",
                "allow b 10:200 r",
                "allow b *:* m"
            ]
        );
    }

    #[test]
    fn removal_under_a_wildcard_is_refused() {
        let r = Emulator::from_rules(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "access": "rwm" },
            { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "rw" }
        ])));
        assert!(r.is_err());
    }

    #[test]
    fn later_rules_win() {
        let e = Emulator::from_rules(&rules(serde_json::json!([
            { "allow": false, "access": "rwm" },
            { "allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwm" },
            { "allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwm" }
        ])))
        .unwrap();
        assert_eq!(e, Emulator::from_list("").unwrap());
    }
}
