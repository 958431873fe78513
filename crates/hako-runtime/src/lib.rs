//! hako-runtime: the kernel work of the hako OCI runtime.
//!
//! The process model (docs/architecture.md): the runtime process is single-threaded and clones the
//! container init itself ([`sys::clone3`]); the two talk over one SOCK_SEQPACKET pair
//! ([`init::channel`]); the created init waits on a unix socket in the state directory until `start`
//! connects ([`container::lifecycle::start`]).

pub mod cgroups;
pub mod checkpoint;
pub mod container;
pub mod error;
pub mod fs;
pub mod init;
pub mod log;
pub mod net;
pub mod procinfo;
pub mod resctrl;
pub mod security;
pub mod sys;

pub use error::{Error, Result};
