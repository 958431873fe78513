//! What confines the container's process beyond namespaces: seccomp filters (and the -ENOSYS
//! stub in front of them), and LSM labels.

pub mod enosys;
pub mod lsm;
pub mod seccomp;
