//! The container's network devices (`linux.netDevices`): moved in by the runtime while the init
//! waits between its mounts and its hooks, through rtnetlink.

pub mod devices;
pub mod rtnl;
