//! The container's record and the commands that act on it: `create`/`run` clone the init and
//! answer it ([`create`]), everything after works from the record in the state store
//! ([`lifecycle`], [`store`]); `exec` adds a process, [`control`] and [`events`] act on the
//! cgroups of a live container, [`hooks`] runs the OCI hooks, [`foreground`] is the runtime as
//! the parent of a foreground process.

pub mod control;
pub mod crash;
pub mod create;
pub mod events;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod hooks;
pub mod lifecycle;
pub mod pidfd_socket;
pub mod store;
pub mod support;
