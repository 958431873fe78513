//! The container's filesystem: the new root and its mounts, devices, and the resolution of every
//! path inside the rootfs without following a symlink out of it ([`paths`]).

pub mod bind_flags;
pub mod bind_sources;
pub mod cgroupfs;
pub mod devices;
pub mod host_mounts;
pub mod idmapped;
pub mod mounts;
pub mod paths;
pub mod rootfs;
