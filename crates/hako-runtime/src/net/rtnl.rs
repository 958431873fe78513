//! Raw rtnetlink (NETLINK_ROUTE), only the requests `linux.netDevices` needs: link up/down, move
//! and rename a link into another network namespace, list and add addresses. A few fixed-layout
//! structs and attributes do not justify a netlink crate (and the runtime is synchronous and
//! single-threaded: one socket, one request at a time, answered before the next).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

const NLMSG_HDRLEN: usize = 16;
const IFINFO_LEN: usize = 16;
const IFADDR_LEN: usize = 8;
/// `IFA_F_PERMANENT`: an address configured by hand, not by autoconfiguration or DHCP.
const IFA_F_PERMANENT: u32 = 0x80;
const IFA_FLAGS: u16 = 8;

/// An interface address as the kernel lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: u8,
    pub prefix_len: u8,
    pub scope: u8,
    pub flags: u32,
    pub local: Vec<u8>,
}

impl Addr {
    /// What runc moves with a device: permanent (configured, not autoconfigured) global
    /// addresses; the others depend on the namespace they were made in.
    pub fn movable(&self) -> bool {
        self.flags & IFA_F_PERMANENT != 0 && self.scope == libc::RT_SCOPE_UNIVERSE
    }
}

/// One NETLINK_ROUTE socket in the network namespace the caller was in when it was opened.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn attr(buf: &mut Vec<u8>, typ: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&typ.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align(buf.len()), 0);
}

fn ifinfo(index: i32, flags: u32, change: u32) -> Vec<u8> {
    let mut b = vec![0u8; IFINFO_LEN];
    b[0] = libc::AF_UNSPEC as u8;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The (type, payload) attributes of a message body from `from` on.
fn attrs(b: &[u8], mut from: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while from + 4 <= b.len() {
        let len = u16_at(b, from) as usize;
        if len < 4 || from + len > b.len() {
            break;
        }
        out.push((u16_at(b, from + 2), &b[from + 4..from + len]));
        from += align(len);
    }
    out
}

impl Rtnl {
    pub fn open() -> Result<Rtnl, Errno> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Rtnl { fd, seq: 0 })
    }

    /// Sends one request and collects the answer: the data messages of a dump (until
    /// NLMSG_DONE), or nothing for an acknowledged request (NLMSG_ERROR with 0).
    fn request(&mut self, typ: u16, flags: u16, body: &[u8]) -> Result<Vec<Vec<u8>>, Errno> {
        self.seq += 1;
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + body.len());
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&typ.to_ne_bytes());
        msg.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        // SAFETY: msg is a live buffer of msg.len() bytes; the kernel only reads it.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(Errno::last());
        }
        self.answer()
    }

    fn answer(&self) -> Result<Vec<Vec<u8>>, Errno> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf)?;
            let mut at = 0;
            while at + NLMSG_HDRLEN <= n {
                let len = u32_at(&buf, at) as usize;
                let typ = u16_at(&buf, at + 4);
                if len < NLMSG_HDRLEN || at + len > n {
                    return Err(Errno::EBADMSG);
                }
                let seq = u32_at(&buf, at + 8);
                let body = &buf[at + NLMSG_HDRLEN..at + len];
                at += align(len);
                if seq != self.seq {
                    continue;
                }
                match i32::from(typ) {
                    libc::NLMSG_DONE => return Ok(out),
                    libc::NLMSG_ERROR => {
                        let code = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                        return if code == 0 {
                            Ok(out)
                        } else {
                            Err(Errno::from_raw(-code))
                        };
                    }
                    _ => out.push(body.to_vec()),
                }
            }
        }
    }

    /// Sets the link administratively up or down.
    pub fn set_up(&mut self, index: i32, up: bool) -> Result<(), Errno> {
        let flags = if up { libc::IFF_UP as u32 } else { 0 };
        let body = ifinfo(index, flags, libc::IFF_UP as u32);
        self.request(libc::RTM_NEWLINK, libc::NLM_F_ACK as u16, &body)
            .map(drop)
    }

    /// Moves the link into the network namespace `netns` under the name `name`, in one request:
    /// a rename after the move could collide with a name already there, one before it with a
    /// name on the host.
    pub fn move_to(&mut self, index: i32, name: &str, netns: RawFd) -> Result<(), Errno> {
        let mut body = ifinfo(index, 0, 0);
        let mut cname = name.as_bytes().to_vec();
        cname.push(0);
        attr(&mut body, libc::IFLA_IFNAME, &cname);
        attr(
            &mut body,
            libc::IFLA_NET_NS_FD,
            &(netns as u32).to_ne_bytes(),
        );
        self.request(libc::RTM_NEWLINK, libc::NLM_F_ACK as u16, &body)
            .map(drop)
    }

    /// Every link of this socket's namespace: (index, name).
    pub fn links(&mut self) -> Result<Vec<(i32, String)>, Errno> {
        let body = ifinfo(0, 0, 0);
        let msgs = self.request(libc::RTM_GETLINK, libc::NLM_F_DUMP as u16, &body)?;
        Ok(msgs
            .iter()
            .filter(|m| m.len() >= IFINFO_LEN)
            .filter_map(|m| {
                let index = u32_at(m, 4) as i32;
                let name = attrs(m, IFINFO_LEN)
                    .into_iter()
                    .find(|(t, _)| *t == libc::IFLA_IFNAME)?
                    .1;
                let name = name.split(|b| *b == 0).next().unwrap_or_default();
                Some((index, String::from_utf8_lossy(name).into_owned()))
            })
            .collect())
    }

    /// The addresses of the link `index`, every family.
    pub fn addresses(&mut self, index: i32) -> Result<Vec<Addr>, Errno> {
        let mut body = vec![0u8; IFADDR_LEN];
        body[0] = libc::AF_UNSPEC as u8;
        let msgs = self.request(libc::RTM_GETADDR, libc::NLM_F_DUMP as u16, &body)?;
        Ok(msgs
            .iter()
            .filter(|m| m.len() >= IFADDR_LEN && u32_at(m, 4) as i32 == index)
            .filter_map(|m| {
                let a = attrs(m, IFADDR_LEN);
                let find = |t: u16| a.iter().find(|(ty, _)| *ty == t).map(|(_, d)| d.to_vec());
                let local = find(libc::IFA_LOCAL).or_else(|| find(libc::IFA_ADDRESS))?;
                let flags = find(IFA_FLAGS)
                    .filter(|f| f.len() == 4)
                    .map_or(u32::from(m[2]), |f| u32_at(&f, 0));
                Some(Addr {
                    family: m[0],
                    prefix_len: m[1],
                    scope: m[3],
                    flags,
                    local,
                })
            })
            .collect())
    }

    /// Adds `a` to the link `index` (as `ip addr add`: the local address, the prefix, global
    /// scope).
    pub fn add_address(&mut self, index: i32, a: &Addr) -> Result<(), Errno> {
        let mut body = vec![0u8; IFADDR_LEN];
        body[0] = a.family;
        body[1] = a.prefix_len;
        body[3] = a.scope;
        body[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
        attr(&mut body, libc::IFA_LOCAL, &a.local);
        let flags = libc::NLM_F_ACK | libc::NLM_F_CREATE | libc::NLM_F_EXCL;
        self.request(libc::RTM_NEWADDR, flags as u16, &body)
            .map(drop)
    }
}

fn recv(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        // SAFETY: buf is a live, writable buffer of buf.len() bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = Errno::last();
        if e != Errno::EINTR {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_parsed_back() {
        let mut b = ifinfo(7, 1, 1);
        attr(&mut b, libc::IFLA_IFNAME, b"eth1\0");
        attr(&mut b, libc::IFLA_NET_NS_FD, &9u32.to_ne_bytes());
        assert_eq!(b.len() % 4, 0);
        let a = attrs(&b, IFINFO_LEN);
        assert_eq!(a[0], (libc::IFLA_IFNAME, &b"eth1\0"[..]));
        assert_eq!(a[1].0, libc::IFLA_NET_NS_FD);
        assert_eq!(u32_at(a[1].1, 0), 9);
    }

    #[test]
    fn loopback_of_this_namespace_has_its_address() {
        let Ok(mut r) = Rtnl::open() else { return };
        // SAFETY: a NUL-terminated literal.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) } as i32;
        let addrs = r.addresses(lo).unwrap();
        if let Some(a) = addrs.iter().find(|a| a.family == libc::AF_INET as u8) {
            assert_eq!(a.local, [127, 0, 0, 1]);
            // Host scope: not one a device would take along.
            assert!(!a.movable());
        }
        let links = r.links().unwrap();
        assert!(links.contains(&(lo, "lo".to_string())), "{links:?}");
    }
}
