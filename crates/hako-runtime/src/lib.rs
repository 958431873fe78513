//! hako-runtime: the kernel work of the hako OCI runtime.
//!
//! The process model (docs/architecture.md): the runtime process is single-threaded and clones the
//! container init itself ([`sys::clone3`]); the two talk over one SOCK_SEQPACKET pair
//! ([`channel`]); the created init waits on a unix socket in the state directory until `start`
//! connects ([`container::start`]).

pub mod bind_sources;
pub mod cgroups;
pub mod channel;
pub mod checkpoint;
pub mod console;
pub mod container;
pub mod control;
pub mod crash;
pub mod create;
pub mod dbus;
pub mod devices;
pub mod enosys;
pub mod error;
pub mod events;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod hooks;
pub mod idmap;
pub mod init;
pub mod log;
pub mod lsm;
pub mod mounts;
pub mod namespaces;
pub mod paths;
pub mod process;
pub mod procinfo;
pub mod rootfs;
pub mod rootless;
pub mod seccomp;
pub mod stdio;
pub mod store;
pub mod support;
pub mod sys;

pub use error::{Error, Result};
